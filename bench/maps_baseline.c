/* maps_baseline: the hand-written C baselines for the repeated-maps job,
 * range(N) int64, M maps of x+1, sum and count, on an OpenMP team.
 *   maps_baseline fused N M   one pass: each element gets +M in registers
 *   maps_baseline passes N M  an N-element array and M passes over it
 * Prints "sum: S" and "count: C" like ember-maps, so outputs can be compared.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: maps_baseline fused|passes N M\n");
        return 2;
    }
    int64_t n = strtoll(argv[2], NULL, 10), m = strtoll(argv[3], NULL, 10);
    uint64_t sum = 0;
    if (strcmp(argv[1], "fused") == 0) {
#pragma omp parallel for reduction(+ : sum) schedule(static)
        for (int64_t i = 0; i < n; i++) {
            int64_t x = i;
            for (int64_t k = 0; k < m; k++)
                x += 1;
            sum += (uint64_t)x;
        }
    } else {
        int64_t *a = malloc((size_t)n * sizeof *a);
        if (!a)
            return 1;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++)
            a[i] = i;
        for (int64_t k = 0; k < m; k++) {
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < n; i++)
                a[i] += 1;
        }
#pragma omp parallel for reduction(+ : sum) schedule(static)
        for (int64_t i = 0; i < n; i++)
            sum += (uint64_t)a[i];
        free(a);
    }
    printf("sum: %" PRId64 "\ncount: %" PRId64 "\n", (int64_t)sum, n);
    return 0;
}
