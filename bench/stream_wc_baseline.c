/* stream_wc_baseline.c: the yardstick for ember-stream-wordcount (issue 5)
 * and the bench's data generator.
 *
 *   stream_wc_baseline gen DIR NFILES BYTES VOCAB SEED
 *       writes NFILES files of about BYTES bytes each into DIR: lines of
 *       words drawn from a Zipf(1) vocabulary of VOCAB words (3 to 14
 *       letters, some with a ',' or a '"'), deterministic in SEED.
 *   stream_wc_baseline count DIR [OUT]
 *       a plain single-pass word count, one thread: reads every file of
 *       DIR in name order, splits words at the six C-locale whitespace
 *       bytes, counts them in an open-addressing hash table. Prints
 *       "bytes words distinct seconds" where seconds covers reading and
 *       counting (not listing the directory, not writing OUT). With OUT,
 *       writes the table as ember-stream-wordcount's complete-mode CSV
 *       (its header line, then the words sorted, RFC 4180 quoting), so
 *       the bench can check that both agree.
 *   stream_wc_baseline fsync DIR N
 *       the disk's floor under a batch: the median of N atomic commits of
 *       a small file (write a .tmp, fsync it, rename it, fsync the
 *       directory), in milliseconds. A batch makes three of them in a row
 *       (offsets entry, sink file, commit entry).
 *
 * Same word rule and the same kind of hash (64-bit multiply-mix over 8
 * bytes at a time) as ember's, so the comparison is of the machinery, not
 * of the hash function.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* ---- the hash (the same construction as ember_stream_hash) -------------- */

static inline uint64_t mum(uint64_t a, uint64_t b)
{
    unsigned __int128 r = (unsigned __int128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t load(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    memcpy(&v, p, n);
    return v;
}

static uint64_t hash(const void *bytes, size_t len)
{
    const unsigned char *p = bytes;
    uint64_t h = 0xa0761d6478bd642fULL, a, b;
    size_t n = len;
    while (n > 16) {
        h = mum(load(p, 8) ^ 0xe7037ed1a0b428dbULL, load(p + 8, 8) ^ h);
        p += 16;
        n -= 16;
    }
    if (n > 8) {
        a = load(p, 8);
        b = load(p + 8, n - 8);
    } else {
        a = load(p, n);
        b = 0;
    }
    return mum(0xe7037ed1a0b428dbULL ^ len,
               mum(a ^ 0x8ebc6af09c88c6e3ULL, b ^ h ^ 0x589965cc75374cc3ULL));
}

/* ---- counting ---------------------------------------------------------------- */

typedef struct {
    uint64_t h;
    uint32_t off, len; /* into the word arena */
    uint64_t count;
} slot;

typedef struct {
    slot *s;
    size_t mask, used;
    char *arena;
    size_t alen, acap;
} table;

static void grow(table *t)
{
    size_t cap = t->s ? (t->mask + 1) * 2 : 1 << 16;
    slot *s = calloc(cap, sizeof *s);
    if (!s)
        die("calloc");
    for (size_t i = 0; t->s && i <= t->mask; i++) {
        if (!t->s[i].count)
            continue;
        size_t j = t->s[i].h & (cap - 1);
        while (s[j].count)
            j = (j + 1) & (cap - 1);
        s[j] = t->s[i];
    }
    free(t->s);
    t->s = s;
    t->mask = cap - 1;
}

static void add(table *t, const char *w, size_t len)
{
    uint64_t h = hash(w, len);
    size_t j = h & t->mask;
    for (;; j = (j + 1) & t->mask) {
        slot *s = &t->s[j];
        if (!s->count)
            break;
        if (s->h == h && s->len == len && memcmp(t->arena + s->off, w, len) == 0) {
            s->count++;
            return;
        }
    }
    if (t->alen + len > t->acap) {
        t->acap = (t->acap + len) * 2;
        t->arena = realloc(t->arena, t->acap);
        if (!t->arena)
            die("realloc");
    }
    memcpy(t->arena + t->alen, w, len);
    t->s[j] = (slot){h, (uint32_t)t->alen, (uint32_t)len, 1};
    t->alen += len;
    if (++t->used * 2 > t->mask + 1)
        grow(t);
}

static const unsigned char is_space[256] = {
    [' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\v'] = 1, ['\f'] = 1, ['\r'] = 1};

static uint64_t count_text(table *t, const char *p, size_t n)
{
    uint64_t words = 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && is_space[(unsigned char)p[i]])
            i++;
        size_t s = i;
        while (i < n && !is_space[(unsigned char)p[i]])
            i++;
        if (i > s) {
            add(t, p + s, i - s);
            words++;
        }
    }
    return words;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char **list_dir(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d)
        die(dir);
    size_t cap = 1024;
    char **names = malloc(cap * sizeof *names);
    *n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' || (l >= 4 && !strcmp(de->d_name + l - 4, ".tmp")))
            continue;
        if (*n == cap)
            names = realloc(names, (cap *= 2) * sizeof *names);
        names[(*n)++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, *n, sizeof *names, cmp_name);
    return names;
}

static const table *sort_table;

static int cmp_slot(const void *a, const void *b)
{
    const slot *x = a, *y = b;
    size_t m = x->len < y->len ? x->len : y->len;
    int c = memcmp(sort_table->arena + x->off, sort_table->arena + y->off, m);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static void write_csv(table *t, const char *path)
{
    slot *v = malloc((t->used + 1) * sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i <= t->mask; i++)
        if (t->s[i].count)
            v[k++] = t->s[i];
    sort_table = t;
    qsort(v, k, sizeof *v, cmp_slot);
    FILE *f = fopen(path, "w");
    if (!f)
        die(path);
    fputs("word,count\n", f); /* the header ember-stream-wordcount writes */
    for (size_t i = 0; i < k; i++) {
        const char *w = t->arena + v[i].off;
        int q = memchr(w, ',', v[i].len) || memchr(w, '"', v[i].len);
        if (q)
            putc('"', f);
        for (uint32_t j = 0; j < v[i].len; j++) {
            if (q && w[j] == '"')
                putc('"', f);
            putc(w[j], f);
        }
        if (q)
            putc('"', f);
        fprintf(f, ",%llu\n", (unsigned long long)v[i].count);
    }
    fclose(f);
    free(v);
}

static int count_main(const char *dir, const char *out)
{
    size_t n;
    char **names = list_dir(dir, &n);
    table t = {0};
    grow(&t);
    size_t cap = 1 << 20;
    char *buf = malloc(cap), path[4096];
    uint64_t bytes = 0, words = 0;
    double t0 = now();
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        int fd = open(path, O_RDONLY);
        struct stat st;
        if (fd < 0 || fstat(fd, &st))
            die(path);
        if ((size_t)st.st_size > cap) {
            cap = (size_t)st.st_size * 2;
            buf = realloc(buf, cap);
        }
        size_t got = 0;
        ssize_t r;
        while (got < (size_t)st.st_size && (r = read(fd, buf + got, (size_t)st.st_size - got)) > 0)
            got += (size_t)r;
        close(fd);
        bytes += got;
        words += count_text(&t, buf, got);
    }
    double secs = now() - t0;
    printf("%llu %llu %zu %.6f\n", (unsigned long long)bytes, (unsigned long long)words,
           t.used, secs);
    if (out)
        write_csv(&t, out);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(buf);
    free(t.s);
    free(t.arena);
    return 0;
}

/* ---- generating --------------------------------------------------------------------- */

static uint64_t rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int gen_main(const char *dir, long nfiles, long bytes, long vocab, uint64_t seed)
{
    char **words = malloc((size_t)vocab * sizeof *words);
    double *cdf = malloc((size_t)vocab * sizeof *cdf), sum = 0;
    uint64_t s = seed;
    for (long i = 0; i < vocab; i++) {
        int len = 3 + (int)(rng(&s) % 12);
        words[i] = malloc((size_t)len + 1);
        for (int j = 0; j < len; j++)
            words[i][j] = (char)('a' + rng(&s) % 26);
        if (i % 97 == 5)
            words[i][len / 2] = i % 2 ? ',' : '"';
        words[i][len] = '\0';
        sum += 1.0 / (double)(i + 1);
        cdf[i] = sum;
    }
    mkdir(dir, 0755);
    char path[4096], tmp[4096];
    for (long f = 0; f < nfiles; f++) {
        snprintf(tmp, sizeof tmp, "%s/.f%07ld.part", dir, f);
        snprintf(path, sizeof path, "%s/f%07ld.txt", dir, f);
        FILE *o = fopen(tmp, "w");
        if (!o)
            die(tmp);
        long written = 0;
        int col = 0;
        while (written < bytes) {
            double u = (double)(rng(&s) >> 11) * 0x1.0p-53 * sum;
            long lo = 0, hi = vocab - 1;
            while (lo < hi) {
                long mid = (lo + hi) / 2;
                if (cdf[mid] < u)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            written += fprintf(o, "%s%s", words[lo], ++col % 12 ? " " : "\n");
        }
        fputc('\n', o);
        fclose(o);
        if (rename(tmp, path))
            die(path);
    }
    for (long i = 0; i < vocab; i++)
        free(words[i]);
    free(words);
    free(cdf);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int fsync_main(const char *dir, int n)
{
    double *t = malloc((size_t)n * sizeof *t);
    char tmp[4096], dst[4096];
    for (int i = 0; i < n; i++) {
        snprintf(tmp, sizeof tmp, "%s/.probe.tmp", dir);
        snprintf(dst, sizeof dst, "%s/probe", dir);
        double t0 = now();
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || write(fd, "probe\n", 6) != 6 || fsync(fd) || close(fd) || rename(tmp, dst))
            die(tmp);
        int d = open(dir, O_RDONLY);
        if (d < 0 || fsync(d))
            die(dir);
        close(d);
        t[i] = now() - t0;
    }
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    printf("%.3f\n", 1e3 * t[n / 2]);
    unlink(dst);
    free(t);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "fsync"))
        return fsync_main(argv[2], atoi(argv[3]) > 0 ? atoi(argv[3]) : 1);
    if (argc == 7 && !strcmp(argv[1], "gen"))
        return gen_main(argv[2], atol(argv[3]), atol(argv[4]), atol(argv[5]),
                        strtoull(argv[6], NULL, 10));
    if ((argc == 3 || argc == 4) && !strcmp(argv[1], "count"))
        return count_main(argv[2], argc == 4 ? argv[3] : NULL);
    fprintf(stderr, "usage: %s gen DIR NFILES BYTES VOCAB SEED | count DIR [OUT] | "
                    "fsync DIR N\n", argv[0]);
    return 2;
}
