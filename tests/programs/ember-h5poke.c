/* ember-h5poke: replaces a dataset of an existing ember HDF5 file with N
 * float64 numbers, all 0 but those given as INDEX=VALUE, through the public
 * API (ember_h5_write_array), which seals the file again. The tests make
 * with it checkpoints that verify and yet hold what ember never writes (a
 * whole-file checksum proves a file's bytes, not who wrote them).
 *
 *   ember-h5poke FILE.h5:/path N [INDEX=VALUE ...]
 *
 * VALUE is read by strtod ("nan", "1e300"). Exit 0, 2 bad usage, 1 the
 * write failed. */
#include <ember.h>
#include <ember/graph.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: ember-h5poke FILE.h5:/path N [INDEX=VALUE ...]\n");
        return 2;
    }
    char *end;
    unsigned long long n = strtoull(argv[2], &end, 10);
    if (*end || n == 0 || n > (1u << 24)) {
        fprintf(stderr, "ember-h5poke: N '%s': a whole number in [1, 2^24]\n", argv[2]);
        return 2;
    }
    double *v = calloc(n, sizeof *v);
    if (!v)
        return 1;
    for (int i = 3; i < argc; i++) {
        unsigned long long at = strtoull(argv[i], &end, 10);
        if (*end != '=' || at >= n) {
            fprintf(stderr, "ember-h5poke: '%s': INDEX=VALUE, INDEX below N\n", argv[i]);
            free(v);
            return 2;
        }
        v[at] = strtod(end + 1, NULL);
    }
    char msg[EMBER_MSG_SIZE] = "";
    uint64_t dims[1] = {n};
    int rc = ember_h5_write_array(argv[1], EMBER_F64, v, 1, dims, NULL, 0, 0, msg);
    free(v);
    if (rc) {
        fprintf(stderr, "ember-h5poke: %s\n", msg);
        return 1;
    }
    return 0;
}
