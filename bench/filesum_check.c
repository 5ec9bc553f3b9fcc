/* filesum_check: seconds ember takes to verify a file's whole-file checksum
 * (ember__fsum_check, src/filesum.c) and to read the same file plainly
 * (read(2) in 1 MiB blocks), both warm: the ratio is the hashing's cost
 * over the reading every verification needs. Prints: check_s read_s bytes.
 * Uses a libember-internal symbol on purpose (a benchmark, not a user). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int ember__fsum_check(const char *path, char *msg);

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    char msg[512];
    static char buf[1 << 20];
    double t0 = now();
    int rc = ember__fsum_check(argv[1], msg);
    double t1 = now();
    int fd = open(argv[1], O_RDONLY);
    long long bytes = 0;
    ssize_t k;
    while (fd >= 0 && (k = read(fd, buf, sizeof buf)) > 0)
        bytes += k;
    double t2 = now();
    if (fd >= 0)
        close(fd);
    if (rc != 0) {
        fprintf(stderr, "filesum_check: %s\n", msg);
        return 1;
    }
    printf("%.6f %.6f %lld\n", t1 - t0, t2 - t1, bytes);
    return 0;
}
