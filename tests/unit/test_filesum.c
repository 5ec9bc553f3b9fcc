/* test_filesum.c: the whole-file checksum (src/filesum.c).
 *
 * Files are real HDF5 files made with ember__h5_fcpl (the 512-byte user
 * block), sealed, then damaged byte by byte, cut, extended, and their
 * header rewritten, and each time ember__fsum_check must say so. The hash
 * itself is recomputed here from the documented layout, so the format in
 * docs/checkpoint-format.md is what the code writes.
 */
#include "internal.h"
#include "testutil.h"

#include <errno.h>
#include <hdf5.h>
#include <sys/mman.h>

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

/* A small HDF5 file: one dataset of n doubles, with or without the block. */
static void make_h5(const char *file, int userblock, size_t n)
{
    ember__h5_lock();
    hid_t fcpl = userblock ? (hid_t)ember__h5_fcpl() : H5P_DEFAULT;
    assert_true(fcpl >= 0);
    hid_t f = H5Fcreate(file, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    hsize_t dims = n;
    hid_t s = H5Screate_simple(1, &dims, NULL);
    hid_t d = H5Dcreate2(f, "values", H5T_NATIVE_DOUBLE, s, H5P_DEFAULT,
                         H5P_DEFAULT, H5P_DEFAULT);
    double *v = calloc(n, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = (double)i * 0.5;
    herr_t wr = H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    free(v);
    H5Dclose(d);
    H5Sclose(s);
    herr_t cl = H5Fclose(f);
    if (userblock)
        H5Pclose(fcpl);
    ember__h5_unlock();
    assert_true(f >= 0 && wr >= 0 && cl >= 0);
}

static void make_sealed(const char *file, size_t n)
{
    char msg[EMBER_MSG_SIZE];
    make_h5(file, 1, n);
    TU_OKM(ember__fsum_seal(file, msg), msg);
}

static uint64_t le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Recomputes the header's own hash after the test edited the header. */
static void fix_self_hash(unsigned char *whole)
{
    memset(whole + 40, 0, 8);
    XXH64_canonical_t c;
    XXH64_canonicalFromHash(&c, XXH3_64bits(whole, EMBER__FSUM_BLOCK));
    memcpy(whole + 40, c.digest, 8);
}

static void test_filesum_round_trip(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    make_sealed("a.h5", 1000);
    TU_OKM(ember__fsum_check("a.h5", msg), msg);
    /* sealing twice gives the same bytes: the header is a pure function of
     * the content */
    size_t n1, n2;
    unsigned char *one = tu_slurp("a.h5", &n1);
    TU_OKM(ember__fsum_seal("a.h5", msg), msg);
    unsigned char *two = tu_slurp("a.h5", &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(one, two, n1);
    free(one);
    free(two);
    /* libhdf5 still opens it and reads the data past the block */
    ember__h5_lock();
    hid_t f = H5Fopen("a.h5", H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = f >= 0 ? H5Dopen2(f, "values", H5P_DEFAULT) : -1;
    double v[1000];
    herr_t rd = d >= 0 ? H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL,
                                 H5P_DEFAULT, v) : -1;
    if (d >= 0)
        H5Dclose(d);
    if (f >= 0)
        H5Fclose(f);
    ember__h5_unlock();
    assert_true(rd >= 0);
    assert_true(v[999] == 499.5);
    unlink("a.h5");
}

/* The layout docs/checkpoint-format.md gives, computed independently. */
static void test_filesum_layout_matches_docs(void **state)
{
    (void)state;
    make_sealed("l.h5", 300);
    size_t size;
    unsigned char *w = tu_slurp("l.h5", &size);
    assert_memory_equal(w, "EMBERSUM", 8);
    assert_int_equal(le(w + 8, 4), 1);
    assert_int_equal(le(w + 12, 4), EMBER__FSUM_BLOCK);
    assert_int_equal(le(w + 16, 8), size);
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits(w + EMBER__FSUM_BLOCK,
                                              size - EMBER__FSUM_BLOCK));
    assert_memory_equal(w + 24, c.digest, 16);
    unsigned char self[8];
    memcpy(self, w + 40, 8);
    fix_self_hash(w);
    assert_memory_equal(w + 40, self, 8);
    /* HDF5's superblock follows the block */
    assert_memory_equal(w + EMBER__FSUM_BLOCK, "\x89HDF\r\n\x1a\n", 8);
    free(w);
    unlink("l.h5");
}

static void test_filesum_every_byte_flip_detected(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    make_sealed("f.h5", 16);
    size_t size;
    unsigned char *whole = tu_slurp("f.h5", &size);
    int fd = open("f.h5", O_RDWR);
    assert_true(fd >= 0);
    for (size_t i = 0; i < size; i++) {
        unsigned char b = whole[i], x = (unsigned char)(b ^ (1u << (i % 8)));
        assert_int_equal(pwrite(fd, &x, 1, (off_t)i), 1);
        int rc = ember__fsum_check("f.h5", msg);
        /* a damaged magic too: the rest of the header is ember's (before,
         * such a file read as one without a header, unverified) */
        int want = EMBER_ECORRUPT;
        if (rc != want)
            fail_msg("byte %zu of %zu flipped: status %d, want %d (%s)", i,
                     size, rc, want, msg);
        TU_MSG_HAS(msg, "f.h5");
        assert_int_equal(pwrite(fd, &b, 1, (off_t)i), 1);
    }
    close(fd);
    TU_OKM(ember__fsum_check("f.h5", msg), msg);
    free(whole);
    unlink("f.h5");
}

static void test_filesum_truncation_detected(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    make_sealed("t.h5", 100);
    size_t size;
    unsigned char *whole = tu_slurp("t.h5", &size);
    size_t cuts[] = {0, 7, 8, 100, 511, 512, 513, size / 2, size - 8, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        tu_spit("cut.h5", whole, cuts[i]);
        int rc = ember__fsum_check("cut.h5", msg);
        int want = cuts[i] < 8 ? EMBER__FSUM_NONE : EMBER_ECORRUPT;
        if (rc != want)
            fail_msg("cut at %zu: status %d, want %d (%s)", cuts[i], rc, want, msg);
        TU_MSG_HAS(msg, "cut.h5");
        if (cuts[i] >= 512)
            TU_MSG_HAS(msg, "truncated");
    }
    free(whole);
    unlink("t.h5");
    unlink("cut.h5");
}

static void test_filesum_extension_detected(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    make_sealed("e.h5", 100);
    size_t size;
    unsigned char *whole = tu_slurp("e.h5", &size);
    unsigned char *more = calloc(size + 4096, 1);
    memcpy(more, whole, size);
    size_t adds[] = {1, 8, 4096};
    for (size_t i = 0; i < 3; i++) {
        tu_spit("ext.h5", more, size + adds[i]);
        assert_int_equal(ember__fsum_check("ext.h5", msg), EMBER_ECORRUPT);
        TU_MSG_HAS(msg, "extended");
    }
    /* the same length, other content: the hash, not the length, fails */
    more[size - 1] ^= 0x40;
    tu_spit("ext.h5", more, size);
    assert_int_equal(ember__fsum_check("ext.h5", msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "content checksum");
    free(more);
    free(whole);
    unlink("e.h5");
    unlink("ext.h5");
}

/* A header that is self-consistent but lies, or is of another version. */
static void test_filesum_header_damage_detected(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    make_sealed("h.h5", 100);
    size_t size;
    unsigned char *whole = tu_slurp("h.h5", &size);
    unsigned char *w = malloc(size);

    memcpy(w, whole, size); /* zeroed block: no header at all */
    memset(w, 0, EMBER__FSUM_BLOCK);
    tu_spit("x.h5", w, size);
    assert_int_equal(ember__fsum_check("x.h5", msg), EMBER__FSUM_NONE);
    TU_MSG_HAS(msg, "cannot be verified");

    memcpy(w, whole, size); /* the magic zeroed: the fields tell it */
    memset(w, 0, 8);
    tu_spit("x.h5", w, size);
    assert_int_equal(ember__fsum_check("x.h5", msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "checksum header is damaged (its first 8 bytes");

    memset(w, 0, 40); /* the fields too: its text tells it */
    tu_spit("x.h5", w, size);
    assert_int_equal(ember__fsum_check("x.h5", msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "checksum header is damaged (its first 8 bytes");

    memcpy(w, whole, size); /* damaged text after the fields */
    w[300] ^= 1;
    tu_spit("x.h5", w, size);
    assert_int_equal(ember__fsum_check("x.h5", msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "header is damaged");

    memcpy(w, whole, size); /* a length that lies, rehashed */
    w[16] ^= 4;
    fix_self_hash(w);
    tu_spit("x.h5", w, size);
    assert_int_equal(ember__fsum_check("x.h5", msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "its checksum header says");

    memcpy(w, whole, size); /* a content hash that lies, rehashed */
    w[30] ^= 4;
    fix_self_hash(w);
    tu_spit("x.h5", w, size);
    assert_int_equal(ember__fsum_check("x.h5", msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "content checksum");

    memcpy(w, whole, size); /* a newer header version */
    w[8] = 2;
    fix_self_hash(w);
    tu_spit("x.h5", w, size);
    assert_int_equal(ember__fsum_check("x.h5", msg), EMBER_EFORMAT);
    TU_MSG_HAS(msg, "version 2");
    free(w);
    free(whole);
    unlink("h.h5");
    unlink("x.h5");
}

static void test_filesum_unsealed_files(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    make_h5("plain.h5", 0, 10); /* what h5py makes: no user block */
    assert_int_equal(ember__fsum_check("plain.h5", msg), EMBER__FSUM_NONE);
    TU_MSG_HAS(msg, "plain.h5");
    assert_int_equal(ember__fsum_seal("plain.h5", msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "user block");
    assert_int_equal(ember__fsum_check("plain.h5", msg), EMBER__FSUM_NONE);
    make_h5("open.h5", 1, 10); /* a block, never sealed */
    assert_int_equal(ember__fsum_check("open.h5", msg), EMBER__FSUM_NONE);
    assert_int_equal(ember__fsum_check("missing.h5", msg), EMBER_ENOTFOUND);
    TU_MSG_HAS(msg, "missing.h5");
    assert_int_equal(mkdir("adir", 0700), 0);
    assert_int_equal(ember__fsum_check("adir", msg), EMBER_EINVAL);
    assert_int_equal(ember__fsum_seal("missing.h5", msg), EMBER_EIO);
    assert_int_equal(mkfifo("fifo", 0600), 0); /* refused, not waited on */
    assert_int_equal(ember__fsum_check("fifo", msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "not a regular file");
    unlink("fifo");
    rmdir("adir");
    unlink("plain.h5");
    unlink("open.h5");
}

/* ember_file_hash: the size and XXH3-64 of every byte, sealed or not. */
static void test_filesum_file_hash_values(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    make_sealed("v.h5", 300000); /* several 1 MiB reads */
    make_h5("p.h5", 0, 1000);
    const char *files[] = {"v.h5", "p.h5"};
    for (int i = 0; i < 2; i++) {
        size_t size;
        unsigned char *w = tu_slurp(files[i], &size);
        uint64_t bytes = 0, h = 0;
        TU_OKM(ember_file_hash(files[i], &bytes, &h, msg), msg);
        assert_int_equal(bytes, size);
        assert_true(h == XXH3_64bits(w, size));
        free(w);
    }
    uint64_t bytes, h;
    assert_int_equal(ember_file_hash("missing.h5", &bytes, &h, msg), EMBER_ENOTFOUND);
    TU_MSG_HAS(msg, "missing.h5");
    unlink("v.h5");
    unlink("p.h5");
}

static void sealed_hash_threads(size_t doubles);

/* The threads share the reads (or each hash reads a mapping), each hash
 * still sees the bytes in order: the same values for 1 to 4 threads, for
 * sizes around the 512-byte block and the 256 KiB chunks, beyond the ring
 * of 8 chunks, and around the 4 MiB from which a file is mapped and its
 * 1 MiB pieces; a sealed file, read or mapped, verifies (is remembered)
 * with any count, and a flipped byte far into it does not. */
static void test_filesum_file_hash_threads(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    const size_t K = 256 << 10, M = 4 * K;
    const size_t sizes[] = {0,     1,     511,     512,          513,
                            K - 1, K,     K + 1,   9 * K + 777,  4 * M - 1,
                            4 * M, 4 * M + 1,      6 * M + 777};
    unsigned char *w = malloc(6 * M + 777);
    assert_non_null(w);
    for (size_t i = 0; i < 6 * M + 777; i++)
        w[i] = (unsigned char)(i * 2654435761u >> 13);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        tu_spit("t.bin", w, sizes[s]);
        for (int t = 1; t <= 4; t++) {
            uint64_t bytes = 1, h = 0;
            TU_OKM(ember_file_hash_threads("t.bin", t, &bytes, &h, msg), msg);
            assert_int_equal(bytes, sizes[s]);
            assert_true(h == XXH3_64bits(w, sizes[s]));
        }
    }
    free(w);
    unlink("t.bin");
    /* 3.2 MB (13 chunks, read) and 5.6 MB (mapped) */
    sealed_hash_threads(400000);
    sealed_hash_threads(700000);
}

static void sealed_hash_threads(size_t doubles)
{
    char msg[EMBER_MSG_SIZE];
    const size_t K = 256 << 10;
    make_sealed("t.h5", doubles);
    size_t size;
    unsigned char *w = tu_slurp("t.h5", &size);
    ember__fsum_memo_clear(0);
    for (int t = 1; t <= 4; t++) {
        uint64_t bytes = 0, h = 0;
        unsigned long hits = ember__fsum_memo_hits();
        TU_OKM(ember_file_hash_threads("t.h5", t, &bytes, &h, msg), msg);
        assert_int_equal(bytes, size);
        assert_true(h == XXH3_64bits(w, size));
        TU_OKM(ember__fsum_check("t.h5", msg), msg);
        assert_int_equal(ember__fsum_memo_hits(), hits + 1);
    }
    size_t at = 11 * K + 100; /* in the 12th chunk */
    w[at] ^= 0x01;
    tu_spit("t.h5", w, size);
    /* the same size and inode: move the mtime, so that no clock tick
     * decides whether the memo still holds the old content */
    struct stat st;
    assert_int_equal(stat("t.h5", &st), 0);
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    times[1].tv_sec += 100;
    assert_int_equal(utimensat(AT_FDCWD, "t.h5", times, 0), 0);
    for (int t = 1; t <= 4; t++) {
        uint64_t bytes = 0, h = 0;
        TU_OKM(ember_file_hash_threads("t.h5", t, &bytes, &h, msg), msg);
        assert_true(h == XXH3_64bits(w, size));
        assert_int_equal(ember__fsum_check("t.h5", msg), EMBER_ECORRUPT);
    }
    ember__fsum_memo_clear(2000000000LL);
    free(w);
    unlink("t.h5");
}

/* A file ember_file_hash verified is not read again by ember__fsum_check
 * while it is unchanged; any change of its stat, a header that differs,
 * or a file changed too recently brings the full check back. */
static void test_filesum_file_hash_verifies_once(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    uint64_t bytes, h;
    make_sealed("o.h5", 300000);
    ember__fsum_memo_clear(0); /* any file counts as old enough */
    unsigned long hits = ember__fsum_memo_hits();
    TU_OKM(ember_file_hash("o.h5", &bytes, &h, msg), msg);
    TU_OKM(ember__fsum_check("o.h5", msg), msg);
    TU_OKM(ember__fsum_check("o.h5", msg), msg);
    assert_int_equal(ember__fsum_memo_hits(), hits + 2);

    /* one byte of the content flipped, the size kept: the mtime moved
     * (set here, so that no clock tick decides), so the check reads the
     * file again and fails */
    struct stat st;
    assert_int_equal(stat("o.h5", &st), 0);
    int fd = open("o.h5", O_RDWR);
    assert_true(fd >= 0);
    unsigned char b;
    off_t at = (off_t)st.st_size - 100;
    assert_int_equal(pread(fd, &b, 1, at), 1);
    b ^= 0x10;
    assert_int_equal(pwrite(fd, &b, 1, at), 1);
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    times[1].tv_sec += 100;
    assert_int_equal(futimens(fd, times), 0);
    assert_int_equal(ember__fsum_check("o.h5", msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "content checksum");
    assert_int_equal(ember__fsum_memo_hits(), hits + 2);

    /* a damaged file is not remembered by the hash */
    TU_OKM(ember_file_hash("o.h5", &bytes, &h, msg), msg);
    assert_int_equal(ember__fsum_check("o.h5", msg), EMBER_ECORRUPT);
    b ^= 0x10; /* repaired: verified again, then remembered */
    assert_int_equal(pwrite(fd, &b, 1, at), 1);
    close(fd);
    TU_OKM(ember__fsum_check("o.h5", msg), msg);
    assert_int_equal(ember__fsum_memo_hits(), hits + 2);
    TU_OKM(ember_file_hash("o.h5", &bytes, &h, msg), msg);
    TU_OKM(ember__fsum_check("o.h5", msg), msg);
    assert_int_equal(ember__fsum_memo_hits(), hits + 3);

    /* the same file replaced by a copy with another inode, and by a file
     * of other content: never taken for the remembered one */
    size_t size;
    unsigned char *w = tu_slurp("o.h5", &size);
    tu_spit("o2.h5", w, size);
    assert_int_equal(rename("o2.h5", "o.h5"), 0);
    TU_OKM(ember__fsum_check("o.h5", msg), msg);
    assert_int_equal(ember__fsum_memo_hits(), hits + 3);
    free(w);

    /* with the default age, a file written just now is not remembered (a
     * write within the same time stamp tick would go unseen) */
    ember__fsum_memo_clear(2000000000LL);
    make_sealed("o.h5", 1000);
    TU_OKM(ember_file_hash("o.h5", &bytes, &h, msg), msg);
    TU_OKM(ember__fsum_check("o.h5", msg), msg);
    assert_int_equal(ember__fsum_memo_hits(), hits + 3);
    unlink("o.h5");
}

/* A file cut or lengthened while a hash reads it from a mapping: no
 * SIGBUS, and the result is what a read of the file then finds (the pass
 * is done again through reads), for the fingerprint on one and two
 * threads and for the check of a sealed file. */
static const char *change_file;
static off_t change_to;
static _Atomic int change_once;

static void change_after_piece(uint64_t piece)
{
    int first = 0;
    if (piece == 1 && atomic_compare_exchange_strong(&change_once, &first, 1))
        assert_int_equal(truncate(change_file, change_to), 0);
}

static void test_filesum_file_changed_while_mapped(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    const size_t M = 1 << 20, size = 6 * M + 777;
    unsigned char *w = calloc(size + 100, 1);
    assert_non_null(w);
    for (size_t i = 0; i < size; i++)
        w[i] = (unsigned char)(i * 2654435761u >> 11);
    const off_t to[] = {3 * M + 5, (off_t)size + 100};
    for (int k = 0; k < 2; k++)
        for (int t = 1; t <= 2; t++) {
            tu_spit("c.bin", w, size);
            change_file = "c.bin", change_to = to[k];
            atomic_store(&change_once, 0);
            ember__fsum_piece_hook = change_after_piece;
            uint64_t bytes = 0, h = 0;
            int rc = ember_file_hash_threads("c.bin", t, &bytes, &h, msg);
            ember__fsum_piece_hook = NULL;
            TU_OKM(rc, msg);
            assert_int_equal(atomic_load(&change_once), 1); /* it was mapped */
            assert_int_equal(bytes, (uint64_t)to[k]);
            assert_true(h == XXH3_64bits(w, (size_t)to[k])); /* zeros past the end */
        }
    free(w);
    unlink("c.bin");

    make_sealed("c.h5", 700000);
    for (int k = 0; k < 2; k++) {
        struct stat st;
        assert_int_equal(stat("c.h5", &st), 0);
        change_file = "c.h5", change_to = k ? st.st_size + 100 : st.st_size / 2;
        atomic_store(&change_once, 0);
        ember__fsum_piece_hook = change_after_piece;
        int rc = ember__fsum_check("c.h5", msg);
        ember__fsum_piece_hook = NULL;
        assert_int_equal(atomic_load(&change_once), 1);
        assert_int_equal(rc, EMBER_ECORRUPT);
        TU_MSG_HAS(msg, "c.h5");
        TU_MSG_HAS(msg, "changed size while being verified");
        make_sealed("c.h5", 700000);
    }
    unlink("c.h5");
}

/* ember_file_hash remembers a sealed file as verified only when it held a
 * read lease on it throughout the pass: not while another description has
 * it open for writing, nor while a writable shared mapping of it exists
 * (whose stores into pages already dirty would move no time stamp), even
 * with that mapping's descriptor closed. Where no lease is granted (a file
 * system ember does not trust with one, another user's file), never. */
static void test_filesum_remembered_only_under_a_lease(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    uint64_t bytes, h;
    make_sealed("l.h5", 300000);
    int fd = open("l.h5", O_RDONLY);
    assert_true(fd >= 0);
    int leases = ember__lease_take(fd) == 1;
    close(fd);
    if (!leases)
        print_message("note: no read lease on files here: never remembered\n");
    ember__fsum_memo_clear(0); /* any file counts as old enough */
    unsigned long hits = ember__fsum_memo_hits();

    int w = open("l.h5", O_RDWR);
    assert_true(w >= 0);
    TU_OKM(ember_file_hash("l.h5", &bytes, &h, msg), msg);
    TU_OKM(ember__fsum_check("l.h5", msg), msg);
    assert_int_equal(ember__fsum_memo_hits(), hits);
    void *map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, w, 0);
    assert_true(map != MAP_FAILED);
    close(w);
    TU_OKM(ember_file_hash("l.h5", &bytes, &h, msg), msg);
    TU_OKM(ember__fsum_check("l.h5", msg), msg);
    assert_int_equal(ember__fsum_memo_hits(), hits);
    assert_int_equal(munmap(map, 4096), 0);

    TU_OKM(ember_file_hash("l.h5", &bytes, &h, msg), msg);
    TU_OKM(ember__fsum_check("l.h5", msg), msg);
    assert_int_equal(ember__fsum_memo_hits(), hits + (unsigned long)leases);
    ember__fsum_memo_clear(2000000000LL);
    unlink("l.h5");
}

/* Called inside a parallel region, the pass gets a team of one: both
 * hashes still see every byte (the sealed file verifies and is
 * remembered where leases are granted), and the values are the same. */
static void test_filesum_hash_inside_parallel(void **state)
{
    (void)state;
    make_sealed("n.h5", 700000); /* 5.6 MB: mapped */
    size_t size;
    unsigned char *w = tu_slurp("n.h5", &size);
    int fd = open("n.h5", O_RDONLY);
    assert_true(fd >= 0);
    int leases = ember__lease_take(fd) == 1;
    close(fd);
    ember__fsum_memo_clear(0);
    unsigned long hits = ember__fsum_memo_hits();
    uint64_t bytes = 0, h = 0;
    int rc = -1;
    char msg[EMBER_MSG_SIZE];
    #pragma omp parallel num_threads(2)
    {
        #pragma omp single
        rc = ember_file_hash_threads("n.h5", 2, &bytes, &h, msg);
    }
    TU_OKM(rc, msg);
    assert_int_equal(bytes, size);
    assert_true(h == XXH3_64bits(w, size));
    TU_OKM(ember__fsum_check("n.h5", msg), msg);
    assert_int_equal(ember__fsum_memo_hits(), hits + (unsigned long)leases);
    ember__fsum_memo_clear(2000000000LL);
    free(w);
    unlink("n.h5");
}

/* ember_file_lease_begin .. _end: refused (EMBER_EBUSY, naming the file)
 * while the file is open for writing or mapped writable elsewhere; held,
 * a writer is held off, and the end lets it go: EMBER_OK while the file's
 * times have not moved, EMBER_ECORRUPT once they did during a break.
 * Where no lease is granted here: nothing held, never an error. */
static void test_filesum_lease_from_hash_to_load(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    tu_spit("fl.el", (const unsigned char *)"0 1\n1 2\n", 8);
    int fd = open("fl.el", O_RDONLY);
    assert_true(fd >= 0);
    int leases = ember__lease_take(fd) == 1;
    close(fd);
    ember_file_lease l;
    if (!leases) {
        print_message("note: no read lease on files here: nothing held\n");
        TU_OKM(ember_file_lease_begin(&l, "fl.el", msg), msg);
        int w0 = open("fl.el", O_WRONLY | O_NONBLOCK); /* not held off */
        assert_true(w0 >= 0);
        close(w0);
        TU_OKM(ember_file_lease_end(&l, "fl.el", msg), msg);
        unlink("fl.el");
        return;
    }
    int w = open("fl.el", O_RDWR);
    assert_true(w >= 0);
    assert_int_equal(ember_file_lease_begin(&l, "fl.el", msg), EMBER_EBUSY);
    TU_MSG_HAS(msg, "fl.el: open for writing");
    TU_OKM(ember_file_lease_end(&l, "fl.el", msg), msg); /* none held */
    void *map = mmap(NULL, 8, PROT_READ | PROT_WRITE, MAP_SHARED, w, 0);
    assert_true(map != MAP_FAILED);
    close(w);
    assert_int_equal(ember_file_lease_begin(&l, "fl.el", msg), EMBER_EBUSY);
    assert_int_equal(munmap(map, 8), 0);

    TU_OKM(ember_file_lease_begin(&l, "fl.el", msg), msg);
    assert_int_equal(open("fl.el", O_WRONLY | O_NONBLOCK), -1); /* held off */
    assert_int_equal(errno, EWOULDBLOCK);
    TU_OKM(ember_file_lease_end(&l, "fl.el", msg), msg);
    TU_OKM(ember_file_lease_end(&l, "fl.el", msg), msg); /* ended: nothing more */
    w = open("fl.el", O_WRONLY | O_NONBLOCK); /* let go */
    assert_true(w >= 0);
    close(w);

    TU_OKM(ember_file_lease_begin(&l, "fl.el", msg), msg);
    assert_int_equal(open("fl.el", O_WRONLY | O_NONBLOCK), -1);
    struct stat st;
    assert_int_equal(stat("fl.el", &st), 0);
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    times[1].tv_sec += 100;
    assert_int_equal(utimensat(AT_FDCWD, "fl.el", times, 0), 0);
    assert_int_equal(ember_file_lease_end(&l, "fl.el", msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "fl.el: opened for writing");
    unlink("fl.el");
}

/* ember__pread_full and ember__copy give the same bytes whatever the
 * buffer's place against the file's offset (or the source's), the slow
 * places (1-63 bytes past, modulo 4 KiB) that go through the bounce buffer
 * (64 KiB) and the pieces among them, at lengths around the piece and the
 * bounce buffer's size, and across the end of the file. */
static void test_filesum_pread_and_copy_any_alignment(void **state)
{
    (void)state;
    enum { SIZE = 140001 };
    unsigned char *data = malloc(SIZE), *room = aligned_alloc(4096, 96 * 4096);
    assert_non_null(data);
    assert_non_null(room);
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < SIZE; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        data[i] = (unsigned char)x;
    }
    tu_spit("p.bin", data, SIZE);
    int fd = open("p.bin", O_RDONLY);
    assert_true(fd >= 0);
    const uint64_t at[] = {0, 16, 4080, 4095, 5000};
    const size_t len[] = {1, COPY_PIECE, COPY_PIECE + 1, 65536, 65537, 100000, SIZE};
    const size_t place[] = {0, 1, 8, 16, 31, 48, 63, 64, 100, 4095};
    for (size_t a = 0; a < sizeof at / sizeof *at; a++)
        for (size_t l = 0; l < sizeof len / sizeof *len; l++)
            for (size_t p = 0; p < sizeof place / sizeof *place; p++) {
                /* the buffer place[p] bytes past the file offset, mod 4 KiB */
                unsigned char *buf = room + (at[a] + place[p]) % 4096;
                size_t want = at[a] + len[l] > SIZE ? SIZE - at[a] : len[l];
                memset(buf, 0xA5, len[l] + 1);
                assert_int_equal(ember__pread_full(fd, buf, len[l], at[a]), (long long)want);
                assert_memory_equal(buf, data + at[a], want);
                assert_int_equal(buf[len[l]], 0xA5); /* nothing past the request */
                /* the same places for a copy of buf's bytes, to 160 KiB on */
                unsigned char *to = room + 40 * 4096 + (size_t)(buf - room + place[p]) % 4096;
                memset(to, 0x5A, want + 1);
                assert_ptr_equal(ember__copy(to, buf, want), to);
                assert_memory_equal(to, data + at[a], want);
                assert_int_equal(to[want], 0x5A);
            }
    close(fd);
    unlink("p.bin");
    free(room);
    free(data);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filesum_round_trip),
        cmocka_unit_test(test_filesum_layout_matches_docs),
        cmocka_unit_test(test_filesum_every_byte_flip_detected),
        cmocka_unit_test(test_filesum_truncation_detected),
        cmocka_unit_test(test_filesum_extension_detected),
        cmocka_unit_test(test_filesum_header_damage_detected),
        cmocka_unit_test(test_filesum_unsealed_files),
        cmocka_unit_test(test_filesum_file_hash_values),
        cmocka_unit_test(test_filesum_file_hash_threads),
        cmocka_unit_test(test_filesum_file_hash_verifies_once),
        cmocka_unit_test(test_filesum_file_changed_while_mapped),
        cmocka_unit_test(test_filesum_remembered_only_under_a_lease),
        cmocka_unit_test(test_filesum_lease_from_hash_to_load),
        cmocka_unit_test(test_filesum_hash_inside_parallel),
        cmocka_unit_test(test_filesum_pread_and_copy_any_alignment),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
