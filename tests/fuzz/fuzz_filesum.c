/* fuzz_filesum.c: the whole-file checksum header every HDF5 file ember
 * writes carries in its 512-byte user block (src/filesum.c): the check a
 * file passes before libhdf5 ever sees it (ember__fsum_check_id), the
 * seal (ember__fsum_seal, ember__fsum_seal_image) and ember_file_hash, the
 * programs' input fingerprint that verifies a sealed file in the same pass.
 *
 * Input: one byte of options, then the file.
 *   bits 0-1  0  the file as is: checked and hashed
 *             1  sealed first (the harness puts HDF5's signature at byte
 *                512 when the file is long enough to hold one): it must
 *                then verify, and ember__fsum_seal_image must give the
 *                same first block
 *             2  sealed, then one byte changed (the one at the offset of
 *                the next 4 input bytes, modulo the length, XOR bit 2-7 of
 *                the option byte or 1): it must no longer verify
 *             3  sealed, then cut or extended by the number of bytes in
 *                bits 2-7: it must no longer verify
 *
 * What must hold besides: a status is EMBER_OK, EMBER__FSUM_NONE or an
 * error with a one-line message naming the file; a file that verifies
 * has "EMBERSUM" at byte 0, is at least a block long and its identity
 * (ember__file_id) is its size and first block; ember_file_hash gives the
 * file's size and the XXH3-64 of all its bytes, whatever the header says
 * (a sealed file that does not verify is no error there: its load says
 * so, include/ember.h).
 */
#include "fuzz.h"

#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

static void fail(const char *what, int rc, const char *msg)
{
    char detail[EMBER_MSG_SIZE + 32];
    snprintf(detail, sizeof detail, "status %d: %s", rc, msg);
    fuzz_fail(what, detail);
}

/* ember__fsum_seal_image's piece callback, handing out the image in odd
 * steps, so the stepped hash is exercised as a writer that copies from
 * elsewhere would. */
static const unsigned char *piece(void *arg, size_t lo, size_t *n)
{
    size_t step = lo < 1024 ? *n : 777;
    if (*n > step)
        *n = step;
    return (const unsigned char *)arg + lo;
}

/* Checks path (size bytes, content data) and hashes it; the check's status. */
static int check(const char *path, const unsigned char *data, size_t size)
{
    char msg[EMBER_MSG_SIZE];
    ember__file_id id;
    memset(&id, 0xa5, sizeof id);
    int rc = ember__fsum_check_id(path, &id, msg);
    if (rc != EMBER__FSUM_NONE)
        fuzz_check_msg(rc, msg, "ember__fsum_check_id");
    if (rc != EMBER_OK && rc != EMBER__FSUM_NONE && !strstr(msg, path))
        fail("a failed check does not name the file", rc, msg);
    if (rc == EMBER_OK) {
        if (size < EMBER__FSUM_BLOCK || memcmp(data, "EMBERSUM", 8) != 0)
            fail("a file verified without the header", rc, "");
        if (id.size != size || memcmp(id.head, data, EMBER__FSUM_BLOCK) != 0)
            fail("a verified file's identity is not its size and first block", rc, "");
    }
    uint64_t bytes = 0, xxh = 0;
    char hmsg[EMBER_MSG_SIZE];
    int hrc = ember_file_hash(path, &bytes, &xxh, hmsg);
    fuzz_check_msg(hrc, hmsg, "ember_file_hash");
    if (hrc == EMBER_OK && (bytes != size || xxh != XXH3_64bits(data, size)))
        fail("ember_file_hash gave another size or hash than the file's", hrc, "");
    /* A file that fails to verify is no error of ember_file_hash (its load
     * says so): a readable regular file always hashes. Files this fresh are
     * never remembered as verified (the memo wants them 2 s old), so the
     * check above read every one whole. */
    if (hrc != EMBER_OK)
        fail("ember_file_hash failed on a readable file", hrc, hmsg);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20))
        return 0;
    int mode = data[0] & 3;
    unsigned arg = data[0] >> 2;
    size_t n = size - 1;
    unsigned char *buf = malloc(n + 256 + 1);
    if (!buf)
        abort();
    if (n)
        memcpy(buf, data + 1, n);
    char path[8192];
    if (mode == 0) {
        snprintf(path, sizeof path, "%s", fuzz_write("f.h5", buf, n));
        check(path, buf, n);
        free(buf);
        return 0;
    }

    /* seal: a user block, HDF5's signature after it */
    if (n >= EMBER__FSUM_BLOCK + 8)
        memcpy(buf + EMBER__FSUM_BLOCK, ember__hdf5_sig, 8);
    snprintf(path, sizeof path, "%s", fuzz_write("f.h5", buf, n));
    char msg[EMBER_MSG_SIZE];
    int rc = ember__fsum_seal(path, msg);
    fuzz_check_msg(rc, msg, "ember__fsum_seal");
    if ((rc == EMBER_OK) != (n >= EMBER__FSUM_BLOCK + 8))
        fail("seal accepted a file without a user block, or refused one with it", rc, msg);
    unsigned char *image = malloc(n + 1);
    if (!image)
        abort();
    if (n)
        memcpy(image, buf, n);
    int irc = ember__fsum_seal_image(image, n, (arg & 1) ? piece : NULL, image, msg);
    fuzz_check_msg(irc, msg, "ember__fsum_seal_image");
    if ((irc == EMBER_OK) != (rc == EMBER_OK))
        fail("seal and seal_image disagree on whether a file can be sealed", irc, msg);
    if (rc != EMBER_OK) {
        free(image);
        free(buf);
        return 0;
    }
    FILE *f = fopen(path, "rb");
    if (!f || fread(buf, 1, n, f) != n)
        fail("cannot read the sealed file back", 0, path);
    fclose(f);
    if (memcmp(image, buf, n) != 0)
        fail("seal_image and seal wrote different files", 0, "");
    free(image);

    if (mode == 1) {
        int c = check(path, buf, n);
        if (c != EMBER_OK)
            fail("a file just sealed does not verify", c, "");
    } else if (mode == 2) {
        size_t at = 0;
        for (size_t i = 1; i <= 4 && i < n; i++)
            at = at << 8 | buf[n - i];
        at %= n;
        buf[at] ^= (unsigned char)(arg ? arg : 1);
        fuzz_write("f.h5", buf, n);
        int c = check(path, buf, n);
        if (c == EMBER_OK)
            fail("a sealed file with a byte changed still verifies", c, "");
    } else {
        size_t delta = arg ? arg : 1;
        size_t m = (arg & 32) ? (n > delta ? n - delta : 0) : n + delta;
        for (size_t i = n; i < m; i++)
            buf[i] = (unsigned char)i;
        fuzz_write("f.h5", buf, m);
        int c = check(path, buf, m);
        if (c == EMBER_OK)
            fail("a sealed file cut or extended still verifies", c, "");
    }
    free(buf);
    return 0;
}
