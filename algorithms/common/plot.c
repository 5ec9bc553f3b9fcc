/* plot.c: convergence plots (gnuplot) and lineage pictures (dot), see
 * plot.h. The history comes from a --metrics file (one JSON object a line,
 * cli_loop.c writes them) or from the "history" array of a loop
 * checkpoint (ember_cli.history, cli.h); either becomes rows of iteration,
 * value, seconds and flags, written into the gnuplot script as inline data
 * blocks, so gnuplot reads nothing but its stdin.
 */
#include "plot.h"

#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- running a tool ------------------------------------------------------------ */

/* The tool's path in PATH, into buf; 0 found, -1 not. */
static int find_tool(const char *tool, char *buf, size_t size)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        return -1;
    for (const char *p = path;;) {
        const char *e = strchr(p, ':');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        int n = len ? snprintf(buf, size, "%.*s/%s", (int)len, p, tool)
                    : snprintf(buf, size, "./%s", tool);
        struct stat st;
        if (n > 0 && (size_t)n < size && stat(buf, &st) == 0 && S_ISREG(st.st_mode) &&
            access(buf, X_OK) == 0)
            return 0;
        if (!e)
            return -1;
        p = e + 1;
    }
}

int ember_plot_need(const ember_cli *cli, const char *flag, const char *tool,
                    const char *package)
{
    char path[4096];
    if (find_tool(tool, path, sizeof path) == 0)
        return 0;
    return ember_cli_usage_error(cli, "--%s needs %s, which is not installed (not in "
                                 "PATH): apt-get install %s", flag, tool, package);
}

/* Writes all of buf to fd; 0 or an errno. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return errno;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/* 1 when the file starts (after white space and an XML declaration or
 * comments) like an SVG document ("<svg" in its first 4 KiB) and ends
 * like one ("</svg>", then white space only): a tool whose writes failed
 * on a full disk may still exit 0, with half a picture written. */
static int looks_like_svg(const char *path)
{
    char head[4097], tail[65];
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t n = fread(head, 1, sizeof head - 1, f);
    head[n] = '\0';
    size_t t = fseek(f, -(long)(sizeof tail - 1), SEEK_END) == 0 || fseek(f, 0, SEEK_SET) == 0
                   ? fread(tail, 1, sizeof tail - 1, f)
                   : 0;
    fclose(f);
    while (t && strchr(" \t\r\n", tail[t - 1]))
        t--;
    tail[t] = '\0';
    return strstr(head, "<svg") != NULL && t >= 6 && strcmp(tail + t - 6, "</svg>") == 0;
}

/* Runs tool with argv, input on its stdin and its stdout into out (through
 * out.tmp). 0, 1 (the tool failed), 2 (missing tool, output not creatable). */
static int run_tool(const char *prog, const char *tool, const char *package,
                    char *const argv[], const char *input, size_t len,
                    const char *out)
{
    char exe[4096], tmp[4096];
    if (find_tool(tool, exe, sizeof exe) != 0) {
        fprintf(stderr, "%s: %s is not installed (not in PATH): apt-get install %s\n",
                prog, tool, package);
        return EMBER_EXIT_USAGE;
    }
    /* a name of this write's own, never an existing file or link */
    if (ember_cli_tmp_name(out, tmp, sizeof tmp)) {
        fprintf(stderr, "%s: %s: file name too long\n", prog, out);
        return EMBER_EXIT_USAGE;
    }
    int ofd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (ofd < 0) {
        fprintf(stderr, "%s: cannot create %s: %s\n", prog, tmp, strerror(errno));
        return EMBER_EXIT_USAGE;
    }
    int pfd[2];
    if (pipe(pfd) != 0) {
        fprintf(stderr, "%s: pipe: %s\n", prog, strerror(errno));
        close(ofd);
        ember_cli_publish(EMBER_EXIT_FAILURE, tmp, out, NULL);
        return EMBER_EXIT_FAILURE;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) { /* the child: stdin from the pipe, stdout to the file */
        if (dup2(pfd[0], STDIN_FILENO) < 0 || dup2(ofd, STDOUT_FILENO) < 0)
            _exit(127);
        close(pfd[0]);
        close(pfd[1]);
        close(ofd);
        signal(SIGPIPE, SIG_DFL);
        execv(exe, argv);
        _exit(127);
    }
    close(pfd[0]);
    close(ofd);
    int status = EMBER_EXIT_OK, e = 0;
    if (pid < 0) {
        fprintf(stderr, "%s: cannot start %s: %s\n", prog, exe, strerror(errno));
        close(pfd[1]);
        ember_cli_publish(EMBER_EXIT_FAILURE, tmp, out, NULL);
        return EMBER_EXIT_FAILURE;
    }
    /* A tool that dies early must not kill us with SIGPIPE. */
    struct sigaction ign, old;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &old);
    e = write_all(pfd[1], input, len);
    close(pfd[1]);
    sigaction(SIGPIPE, &old, NULL);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
        if (WIFEXITED(ws))
            fprintf(stderr, "%s: %s failed (exit status %d)\n", prog, exe,
                    WEXITSTATUS(ws));
        else
            fprintf(stderr, "%s: %s was killed by signal %d\n", prog, exe,
                    WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
        status = EMBER_EXIT_FAILURE;
    } else if (e) {
        fprintf(stderr, "%s: writing to %s: %s\n", prog, exe, strerror(e));
        status = EMBER_EXIT_FAILURE;
    } else if (!looks_like_svg(tmp)) {
        fprintf(stderr, "%s: %s wrote no SVG, or half of one (a full disk?)\n", prog, exe);
        status = EMBER_EXIT_FAILURE;
    }
    char msg[EMBER_MSG_SIZE];
    if (ember_cli_publish(status, tmp, out, msg) != status) { /* its sync or rename */
        fprintf(stderr, "%s: %s\n", prog, msg);
        status = EMBER_EXIT_FAILURE;
    }
    return status;
}

int ember_plot_dot(const char *prog, const char *dot, const char *out)
{
    char *argv[] = {"dot", "-Tsvg", NULL};
    return run_tool(prog, "dot", "graphviz", argv, dot, strlen(dot), out);
}

/* ---- history rows ------------------------------------------------------------ */

typedef struct {
    double it, value, seconds;
    int checkpoint;
} row;

typedef struct {
    row *rows;
    size_t n, cap;
    double *resumes; /* iterations a run resumed from */
    size_t nres, capres;
    char value_name[64];
    char title[512];
} history;

static int push_row(history *h, row r)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 256;
        row *p = realloc(h->rows, cap * sizeof *p);
        if (!p)
            return -1;
        h->rows = p;
        h->cap = cap;
    }
    h->rows[h->n++] = r;
    return 0;
}

static int push_resume(history *h, double it)
{
    if (h->nres && h->resumes[h->nres - 1] == it)
        return 0;
    if (h->nres == h->capres) {
        size_t cap = h->capres ? 2 * h->capres : 16;
        double *p = realloc(h->resumes, cap * sizeof *p);
        if (!p)
            return -1;
        h->resumes = p;
        h->capres = cap;
    }
    h->resumes[h->nres++] = it;
    return 0;
}

/* Printable ASCII only, and no quote or backslash: safe in a gnuplot
 * double-quoted string with noenhanced text. */
static void safe_text(char *dst, size_t size, const char *src)
{
    size_t j = 0;
    for (const unsigned char *p = (const unsigned char *)src; *p && j + 1 < size; p++)
        dst[j++] = (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\' && *p != '\'' &&
                    *p != '`' && *p != '$' && *p != '@')
                       ? (char)*p
                       : '_';
    dst[j] = '\0';
}

/* ---- from a metrics file ------------------------------------------------------- */

/* One "key": value pair of a flat JSON object. kind: 'n' number, 's'
 * string, 'b' true/false, '0' null. */
typedef struct {
    char key[64];
    char kind;
    double num;
    char str[64];
} pair;

static const char *ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    return p;
}

/* A JSON string at p (after the quote is p[0] == '"'); NULL when bad. */
static const char *json_string(const char *p, char *out, size_t size)
{
    size_t j = 0;
    if (*p++ != '"')
        return NULL;
    for (; *p && *p != '"'; p++) {
        if (*p == '\\') {
            if (!*++p)
                return NULL;
        }
        if (j + 1 < size)
            out[j++] = *p;
    }
    out[j] = '\0';
    return *p == '"' ? p + 1 : NULL;
}

/* Parses a flat JSON object into pairs (at most max); returns the count,
 * or -1 when the line is not such an object. */
static int parse_object(const char *line, pair *pairs, int max)
{
    const char *p = ws(line);
    int n = 0;
    if (*p++ != '{')
        return -1;
    p = ws(p);
    if (*p == '}')
        return *ws(p + 1) ? -1 : 0;
    for (;;) {
        pair tmp, *q = n < max ? &pairs[n] : &tmp;
        if (!(p = json_string(ws(p), q->key, sizeof q->key)))
            return -1;
        p = ws(p);
        if (*p++ != ':')
            return -1;
        p = ws(p);
        if (*p == '"') {
            q->kind = 's';
            if (!(p = json_string(p, q->str, sizeof q->str)))
                return -1;
        } else if (strncmp(p, "true", 4) == 0 || strncmp(p, "false", 5) == 0) {
            q->kind = 'b';
            q->num = *p == 't';
            p += *p == 't' ? 4 : 5;
        } else if (strncmp(p, "null", 4) == 0) {
            q->kind = '0';
            q->num = NAN;
            p += 4;
        } else {
            char *end;
            errno = 0;
            q->kind = 'n';
            q->num = strtod(p, &end);
            if (end == p || errno == ERANGE || !isfinite(q->num))
                return -1;
            p = end;
        }
        n++;
        p = ws(p);
        if (*p == '}')
            return *ws(p + 1) ? -1 : (n < max ? n : max);
        if (*p++ != ',')
            return -1;
    }
}

static int from_metrics(history *h, const char *prog, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: --plot %s: %s\n", prog, path, strerror(errno));
        return EMBER_EXIT_USAGE;
    }
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    int status = 0;
    pair pairs[16];
    ssize_t got;
    while (!status && (got = getline(&line, &cap, f)) > 0) {
        lineno++;
        /* The line's length is getline's, not strlen's: a NUL byte inside
         * a line (zeros a crash left in the file) made a whole line look
         * cut short, taken for the last one, and the rest of the file was
         * skipped without an error. */
        size_t len = (size_t)got;
        int nul = memchr(line, '\0', len) != NULL;
        if (!nul && !*ws(line))
            continue;
        int n = nul ? -1 : parse_object(line, pairs, 16);
        if (n < 0 && line[len - 1] != '\n') {
            /* the last line, cut short: a run killed while writing it */
            fprintf(stderr, "%s: --plot %s:%ld: skipping an unfinished last line "
                            "(the run was killed while writing it)\n", prog, path,
                    lineno);
            break;
        }
        if (n < 0) {
            fprintf(stderr, "%s: --plot %s:%ld: %s\n", prog, path, lineno,
                    nul ? "a NUL byte in the line (zeros left by a crash?): not "
                          "a line of an ember --metrics file"
                        : "not a JSON object of an ember --metrics file");
            status = EMBER_EXIT_USAGE;
            break;
        }
        const pair *event = NULL, *it = NULL, *secs = NULL, *ck = NULL, *val = NULL,
                   *from = NULL;
        for (int i = 0; i < n; i++) {
            const pair *q = &pairs[i];
            if (!strcmp(q->key, "event") && q->kind == 's')
                event = q;
            else if (!strcmp(q->key, "from_iteration") && q->kind == 'n')
                from = q;
            else if (!strcmp(q->key, "iteration") && q->kind == 'n')
                it = q;
            else if (!strcmp(q->key, "seconds"))
                secs = q;
            else if (!strcmp(q->key, "checkpoint") && q->kind == 'b')
                ck = q;
            else if (!val && strcmp(q->key, "checkpoint_bytes") &&
                     (q->kind == 'n' || q->kind == '0'))
                val = q;
        }
        if (event) {
            if (!strcmp(event->str, "resumed") && from && push_resume(h, from->num))
                status = EMBER_EXIT_FAILURE;
            continue;
        }
        if (!it || !val || it->num < 1 || it->num != floor(it->num)) {
            fprintf(stderr, "%s: --plot %s:%ld: a metrics line needs \"iteration\" "
                            "(>= 1) and a value (residual, shift, ...)\n",
                    prog, path, lineno);
            status = EMBER_EXIT_USAGE;
            break;
        }
        /* A restart redoes iterations: the later ones replace the earlier,
         * and the restart is a resume even without a "resumed" line (a
         * metrics file of an older ember). */
        if (h->n && it->num <= h->rows[h->n - 1].it) {
            while (h->n && h->rows[h->n - 1].it >= it->num)
                h->n--;
            if (push_resume(h, it->num - 1))
                status = EMBER_EXIT_FAILURE;
        }
        if (!h->value_name[0])
            safe_text(h->value_name, sizeof h->value_name, val->key);
        row r = {it->num, val->num, secs ? secs->num : NAN, ck && ck->num != 0};
        if (!status && push_row(h, r))
            status = EMBER_EXIT_FAILURE;
    }
    if (!status && ferror(f)) {
        fprintf(stderr, "%s: --plot %s: read error\n", prog, path);
        status = EMBER_EXIT_FAILURE;
    }
    free(line);
    fclose(f);
    if (!status && !h->n) {
        fprintf(stderr, "%s: --plot %s: no iteration lines (an ember --metrics "
                        "file has one per iteration)\n", prog, path);
        status = EMBER_EXIT_USAGE;
    }
    const char *base = strrchr(path, '/');
    char name[200];
    safe_text(name, sizeof name, base ? base + 1 : path);
    snprintf(h->title, sizeof h->title, "%s: %s per iteration", name,
             h->value_name[0] ? h->value_name : "value");
    return status;
}

/* ---- from checkpoints ---------------------------------------------------------- */

/* Reads /scalars/history of a verified checkpoint: 0, or -1 when absent
 * or of the wrong shape. */
static int read_history_array(const char *path, double **out, size_t *n)
{
    int rc = -1;
    hid_t f = H5I_INVALID_HID, d = H5I_INVALID_HID, s = H5I_INVALID_HID;
    H5E_BEGIN_TRY
    {
        f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (f >= 0)
            d = H5Dopen2(f, "/scalars/history", H5P_DEFAULT);
        if (d >= 0)
            s = H5Dget_space(d);
    }
    H5E_END_TRY;
    hsize_t dim = 0;
    if (s >= 0 && H5Sget_simple_extent_ndims(s) == 1 &&
        H5Sget_simple_extent_dims(s, &dim, NULL) == 1 && dim >= 2) {
        double *buf = malloc((size_t)dim * sizeof *buf);
        if (buf && H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0) {
            *out = buf;
            *n = (size_t)dim;
            rc = 0;
        } else {
            free(buf);
        }
    }
    if (s >= 0)
        H5Sclose(s);
    if (d >= 0)
        H5Dclose(d);
    if (f >= 0)
        H5Fclose(f);
    return rc;
}

static void param_value(const char *params, const char *key, char *out, size_t size)
{
    size_t klen = strlen(key);
    out[0] = '\0';
    for (const char *p = params; p && *p;) {
        if (!strncmp(p, key, klen) && p[klen] == '=') {
            const char *e = strchr(p + klen + 1, '\n');
            size_t len = e ? (size_t)(e - p - klen - 1) : strlen(p + klen + 1);
            char raw[256];
            snprintf(raw, sizeof raw, "%.*s", (int)len, p + klen + 1);
            safe_text(out, size, raw);
            return;
        }
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
}

/* A stream state snapshot's name: a decimal version, ".h5". */
static int is_state_name(const char *f)
{
    size_t digits = strspn(f, "0123456789");
    return digits > 0 && strcmp(f + digits, ".h5") == 0;
}

/* By name; state snapshots (all one directory's) by version, 9 before 10. */
static int by_name(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    const char *bx = strrchr(x, '/'), *by = strrchr(y, '/');
    bx = bx ? bx + 1 : x;
    by = by ? by + 1 : y;
    if (is_state_name(bx) && is_state_name(by) && strlen(bx) != strlen(by))
        return strlen(bx) < strlen(by) ? -1 : 1;
    return strcmp(x, y);
}

static int by_name_desc(const void *a, const void *b)
{
    return by_name(b, a);
}

int ember_list_checkpoint_files(const char *dir, int loop_only, int newest_first,
                                char ***out, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    char **names = NULL;
    size_t cap = 0;
    struct dirent *e;
    int rc = 0;
    *n = 0;
    while (!rc && (e = readdir(d))) {
        const char *f = e->d_name;
        size_t len = strlen(f);
        int named = !strncmp(f, "ckpt-", 5) ||
                    (!loop_only && (!strncmp(f, "ds-", 3) || is_state_name(f)));
        if (!named || len < 4 || strcmp(f + len - 3, ".h5"))
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            char **p = realloc(names, cap * sizeof *p);
            if (!p) {
                rc = -1;
                break;
            }
            names = p;
        }
        size_t size = strlen(dir) + len + 2;
        if (!(names[*n] = malloc(size))) {
            rc = -1;
            break;
        }
        snprintf(names[(*n)++], size, "%s/%s", dir, f);
    }
    closedir(d);
    if (rc) {
        for (size_t i = 0; i < *n; i++)
            free(names[i]);
        free(names);
        names = NULL;
        *n = 0;
        errno = ENOMEM;
    } else if (*n) {
        qsort(names, *n, sizeof *names, newest_first ? by_name_desc : by_name);
    }
    *out = names;
    return rc;
}

static int from_checkpoints(history *h, ember_ctx *ctx, const char *prog,
                            const char *src)
{
    struct stat st;
    char **files = NULL, *one[1] = {(char *)src};
    size_t nfiles = 0;
    int status = 0, is_dir = stat(src, &st) == 0 && S_ISDIR(st.st_mode);
    if (is_dir && ember_list_checkpoint_files(src, 1, 1, &files, &nfiles) != 0) {
        fprintf(stderr, "%s: --plot %s: %s\n", prog, src, strerror(errno ? errno : ENOMEM));
        status = EMBER_EXIT_FAILURE;
    } else if (is_dir && !nfiles) {
        char **other = NULL;
        size_t nother = 0;
        int some = ember_list_checkpoint_files(src, 0, 0, &other, &nother) == 0 && nother;
        fprintf(stderr, "%s: --plot %s: no loop checkpoints (ckpt-*.h5) in it%s\n", prog,
                src, some ? ": its dataset checkpoints (ds-*.h5) or stream state "
                            "snapshots (N.h5) record no convergence history" : "");
        for (size_t i = 0; i < nother; i++)
            free(other[i]);
        free(other);
        status = EMBER_EXIT_USAGE;
    }
    char **list = is_dir ? files : one;
    size_t nlist = is_dir ? nfiles : 1;
    double *arr = NULL;
    size_t narr = 0;
    for (size_t i = 0; !status && i < nlist; i++) {
        char msg[EMBER_MSG_SIZE];
        ember_checkpoint_info *o = NULL;
        int rc = ember_checkpoint_inspect(&o, ctx, list[i], msg);
        if (rc == EMBER_OK && strcmp(o->kind, "loop") != 0) {
            fprintf(stderr, "%s: --plot %s: a %s checkpoint, not a run's (loop) "
                            "checkpoint: it records no convergence history\n", prog,
                    list[i], o->kind);
            status = EMBER_EXIT_USAGE;
        } else if (rc == EMBER_OK && !arr) {
            if (read_history_array(list[i], &arr, &narr) != 0) {
                fprintf(stderr, "%s: --plot %s: records no history (written by an "
                                "ember before 0.2 or not by an ember program); plot "
                                "the run's --metrics file instead\n", prog, list[i]);
                status = EMBER_EXIT_USAGE;
            } else {
                param_value(o->parameters, "info.history", h->value_name,
                            sizeof h->value_name);
                char name[200];
                safe_text(name, sizeof name, o->program[0] ? o->program : "run");
                snprintf(h->title, sizeof h->title, "%s: %s per iteration "
                         "(from its checkpoints)", name,
                         h->value_name[0] ? h->value_name : "value");
            }
        } else if (rc != EMBER_OK) {
            /* a damaged file is skipped, as a resume would skip it */
            fprintf(stderr, "%s: --plot: skipping %s: %s\n", prog, list[i],
                    o ? o->error : msg);
            if (!is_dir) /* the one file named is not a usable checkpoint */
                status = EMBER_EXIT_USAGE;
        }
        /* every checkpoint still present marks its iteration */
        if (rc == EMBER_OK && !status) {
            row r = {(double)o->iteration, NAN, NAN, 2};
            if (push_row(h, r))
                status = EMBER_EXIT_FAILURE;
        }
        ember_checkpoint_info_free(ctx, &o);
    }
    if (!status && !arr) {
        fprintf(stderr, "%s: --plot %s: no checkpoint verifies\n", prog, src);
        status = EMBER_EXIT_FAILURE;
    }
    int sane = arr && arr[0] >= 0 && arr[0] <= (double)narr && arr[0] == floor(arr[0]);
    size_t used = sane ? (size_t)arr[0] : 0;
    if (!status && (!sane ||
                    2 + used * EMBER_CLI_HISTORY_COLS > narr)) {
        fprintf(stderr, "%s: --plot %s: the history array is malformed\n", prog, src);
        status = EMBER_EXIT_FAILURE;
    }
    if (!status) {
        /* rows so far are the files' own iterations (checkpoint marks);
         * the history's rows go after them, then the marks are applied */
        size_t marks = h->n;
        for (size_t i = 0; !status && i < used; i++) {
            const double *a = arr + 2 + i * EMBER_CLI_HISTORY_COLS;
            /* a verified file can hold any number there: no cast of NaN */
            int flags = a[3] >= 0 && a[3] <= 3 ? (int)a[3] : 0;
            row r = {a[0], a[1], a[2], flags & (int)EMBER_CLI_HIST_CHECKPOINT};
            if (push_row(h, r) ||
                ((flags & (int)EMBER_CLI_HIST_RESUMED) && push_resume(h, a[0] - 1)))
                status = EMBER_EXIT_FAILURE;
        }
        for (size_t m = 0; m < marks; m++)
            for (size_t i = marks; i < h->n; i++)
                if (h->rows[i].it == h->rows[m].it)
                    h->rows[i].checkpoint = 1;
        memmove(h->rows, h->rows + marks, (h->n - marks) * sizeof *h->rows);
        h->n -= marks;
        if (!status && !h->n) {
            fprintf(stderr, "%s: --plot %s: the history is empty (no iteration "
                            "done)\n", prog, src);
            status = EMBER_EXIT_USAGE;
        }
    }
    free(arr);
    for (size_t i = 0; i < nfiles; i++)
        free(files[i]);
    free(files);
    return status;
}

/* ---- the gnuplot script -------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, cap;
    int failed;
} text;

static void add(text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void add(text *t, const char *fmt, ...)
{
    for (int tries = 0; !t->failed && tries < 2; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0,
                          fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if (t->buf && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap + (size_t)n + 1) * 2;
        char *p = realloc(t->buf, cap);
        if (!p) {
            t->failed = 1;
            return;
        }
        t->buf = p;
        t->cap = cap;
    }
}

static void script(text *t, const history *h)
{
    int logy = 1;
    double xmin = h->rows[0].it, xmax = h->rows[0].it;
    for (size_t i = 0; i < h->n; i++) {
        const row *r = &h->rows[i];
        if (isfinite(r->value) && r->value <= 0)
            logy = 0;
        xmin = fmin(xmin, r->it);
        xmax = fmax(xmax, r->it);
    }
    if (xmax <= xmin)
        xmax = xmin + 1;
    double pad = (xmax - xmin) * 0.02;
    const char *vn = h->value_name[0] ? h->value_name : "value";
    add(t, "set terminal svg size 900,720 dynamic noenhanced font \"sans,12\" "
           "background rgb \"white\"\n");
    add(t, "$run << EOD\n");
    for (size_t i = 0; i < h->n; i++) {
        const row *r = &h->rows[i];
        if (isfinite(r->value))
            add(t, "%.17g %.17g %.17g\n", r->it, r->value,
                isfinite(r->seconds) ? r->seconds : 0.0);
    }
    add(t, "EOD\n$ckpt << EOD\n");
    for (size_t i = 0; i < h->n; i++)
        if (h->rows[i].checkpoint && isfinite(h->rows[i].value))
            add(t, "%.17g %.17g %.17g\n", h->rows[i].it, h->rows[i].value,
                isfinite(h->rows[i].seconds) ? h->rows[i].seconds : 0.0);
    add(t, "EOD\n");
    add(t, "set multiplot layout 2,1 title \"%s\"\n", h->title);
    add(t, "set grid\nset key outside right top\nset xrange [%.17g:%.17g]\n", xmin - pad,
        xmax + pad);
    for (size_t i = 0; i < h->nres; i++)
        add(t, "set arrow from %.17g, graph 0 to %.17g, graph 1 nohead dt 2 lw 2 "
               "lc rgb \"#d62728\"\n", h->resumes[i], h->resumes[i]);
    add(t, "set xlabel \"iteration\"\nset ylabel \"%s%s\"\n", vn, logy ? " (log scale)" : "");
    if (logy)
        add(t, "set logscale y\nset format y \"%%.0e\"\n");
    size_t nck = 0;
    for (size_t i = 0; i < h->n; i++)
        nck += h->rows[i].checkpoint && isfinite(h->rows[i].value);
    /* (an empty data block would make gnuplot warn: no checkpoint, no key) */
    add(t, "plot $run using 1:2 with linespoints pt 7 ps 0.4 lw 2 lc rgb \"#1f77b4\" "
           "title \"%s\"", vn);
    if (nck)
        add(t, ", \\\n     $ckpt using 1:2 with points pt 5 ps 1.2 lc rgb \"#2ca02c\" "
               "title \"checkpoint written\"");
    if (h->nres)
        add(t, ", \\\n     NaN with lines dt 2 lw 2 lc rgb \"#d62728\" title \"resumed\"");
    add(t, "\nunset logscale y\nset format y \"%%g\"\n");
    add(t, "set ylabel \"seconds per iteration\"\n");
    add(t, "plot $run using 1:3 with impulses lw 2 lc rgb \"#ff7f0e\" "
           "title \"compute seconds\"");
    if (nck)
        add(t, ", \\\n     $ckpt using 1:3 with points pt 5 ps 1.2 lc rgb \"#2ca02c\" "
               "title \"checkpoint written\"");
    add(t, "\n");
    add(t, "unset multiplot\n");
}

int ember_plot_convergence(ember_ctx *ctx, const char *prog, const char *src,
                           const char *out)
{
    history h;
    memset(&h, 0, sizeof h);
    struct stat st;
    int status;
    if (stat(src, &st) != 0) {
        fprintf(stderr, "%s: --plot %s: %s\n", prog, src, strerror(errno));
        return EMBER_EXIT_USAGE;
    }
    /* a checkpoint directory, or an HDF5 file: checkpoints; else metrics */
    FILE *f = S_ISDIR(st.st_mode) ? NULL : fopen(src, "rb");
    unsigned char head[520] = {0}; /* the signature, after a user block or not */
    size_t got = f ? fread(head, 1, sizeof head, f) : 0;
    if (f)
        fclose(f);
    int h5 = (got >= 8 && !memcmp(head, "\x89HDF\r\n\x1a\n", 8)) ||
             (got >= 520 && !memcmp(head + 512, "\x89HDF\r\n\x1a\n", 8));
    int ckpt = S_ISDIR(st.st_mode) || h5 || ember_cli_has_suffix(src, ".h5");
    status = ckpt ? from_checkpoints(&h, ctx, prog, src) : from_metrics(&h, prog, src);
    size_t finite = 0;
    for (size_t i = 0; !status && i < h.n; i++)
        finite += isfinite(h.rows[i].value) != 0;
    if (!status && !finite) {
        fprintf(stderr, "%s: --plot %s: no iteration has a finite value to draw\n",
                prog, src);
        status = EMBER_EXIT_USAGE;
    }
    if (!status) {
        text t = {NULL, 0, 0, 0};
        script(&t, &h);
        char *argv[] = {"gnuplot", NULL};
        if (t.failed) {
            fprintf(stderr, "%s: out of memory\n", prog);
            status = EMBER_EXIT_FAILURE;
        } else {
            status = run_tool(prog, "gnuplot", "gnuplot-nox", argv, t.buf, t.len, out);
        }
        free(t.buf);
    }
    free(h.rows);
    free(h.resumes);
    return status;
}
