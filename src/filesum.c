/* filesum.c: a whole-file checksum for the HDF5 files ember writes.
 *
 * libhdf5 trusts its own metadata: a damaged chunk index makes it read fill
 * values (a silently wrong result), and some damage crashes it outright.
 * Fletcher32 covers only the chunks HDF5 finds. So every file ember writes
 * (checkpoints, stream state snapshots, graph and array files, datasets
 * saved into a new file) is created
 * with an HDF5 user block of EMBER__FSUM_BLOCK bytes, which HDF5 itself,
 * h5dump and h5py skip, and once HDF5 has closed the file this module
 * writes a header into that block: magic, version, the file's length and
 * an XXH3-128 hash of every byte after the block, and an XXH3-64 hash of
 * the block itself. Before any H5Fopen of such a file the reader checks
 * length and hashes by streaming the file once; a file that fails is never
 * given to libhdf5. Layout (docs/checkpoint-format.md, "Whole-file
 * checksum"), integers little-endian, hashes in xxHash's canonical
 * (big-endian) byte order:
 *
 *   0   8  magic "EMBERSUM"
 *   8   4  header version (1)
 *   12  4  block size (512)
 *   16  8  file length in bytes, block included
 *   24 16  XXH3-128 of bytes [512, length)
 *   40  8  XXH3-64 of the 512-byte block with these 8 bytes zero
 *   48 ..  a line of text naming the format; zero padding
 *
 * No HDF5 here: files are read from a mapping guarded against a
 * truncation meanwhile (mapfile.c), or through chunk buffers. Callers:
 * ckptfile.c (commit and open; a checkpoint built in memory is sealed
 * there, by ember__fsum_seal_image, before it is written), h5io.c (files
 * it reads or reopens), graph_h5.c (graph and array files).
 *
 * ember_file_hash (public) gives the programs' input fingerprint, the
 * XXH3-64 of a whole file, and verifies a sealed file in the same pass,
 * with the threads sharing the reads (see "the hashing pass" below).
 * A file it verified is remembered (device, inode, size, mtime, ctime and
 * hash; a few entries, process-wide), and ember__fsum_check does not read
 * that unchanged file a second time: it still checks the header and that
 * the header's hash is the remembered one. Only a file whose mtime and
 * ctime were both at least 2 s older than the start of the pass is
 * remembered (git's "racy file" rule): a write after the pass then moves
 * a time stamp even on a file system with coarse time stamps. And only
 * one on which the pass held a read lease throughout (see
 * ember_file_hash_threads).
 */
#include "internal.h"

/* The state struct on the stack (no allocation): its layout is this
 * header's, and libxxhash comes from the same package. */
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>
#ifdef EMBER_HAVE_XXH_DISPATCH
/* Maps the XXH3 calls below to libxxhash's run-time dispatch (AVX2 or
 * AVX-512 where the CPU has them): the same values, about twice as fast
 * (see CMakeLists.txt). */
#include <xxh_x86dispatch.h>
#endif

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAGIC "EMBERSUM"
#define VERSION 1u
#define OFF_VERSION 8
#define OFF_BLOCK 12
#define OFF_LENGTH 16
#define OFF_HASH 24
#define OFF_SELF 40
#define OFF_TEXT 48

#define MEMO_SLOTS 8

const unsigned char ember__hdf5_sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* The header's own hash, with its slot taken as zero. */
static void self_hash(const unsigned char *block, unsigned char out[8])
{
    unsigned char tmp[EMBER__FSUM_BLOCK];
    memcpy(tmp, block, sizeof tmp);
    memset(tmp + OFF_SELF, 0, 8);
    XXH64_canonical_t c;
    XXH64_canonicalFromHash(&c, XXH3_64bits(tmp, sizeof tmp));
    memcpy(out, c.digest, 8);
}

/* ---- the hashing pass ------------------------------------------------------
 *
 * One pass through the file feeds up to two hashes: XXH3-64 of every byte
 * ("all") and XXH3-128 of the bytes from EMBER__FSUM_BLOCK on ("body").
 * A hash is a chain (each chunk after the one before it), but reading is
 * not, and on a page-cached file the read (a copy) costs about as much as
 * both hashes: so the threads share a ring of CHUNK_SLOTS chunk buffers.
 * Each thread, holding the lock, takes the next chunk of a hash that nobody
 * is feeding, when it is in the ring; else reads the next chunk into a slot
 * both hashes are done with; else waits. Each hash still sees the file's
 * bytes in order, so the values do not depend on the number of threads.
 * One thread uses one slot (reads, then hashes, in turn). On 2 cores,
 * scale-20 Kronecker .h5 (276 MB), page cached: 0.033 s on 2 threads,
 * 0.057 s on one (0.09 s before, with the SSE2 hashes). */

#define CHUNK_BYTES (256u << 10) /* stays in a core's cache between read and hash */
#define CHUNK_SLOTS 8
#define NO_END INT64_MAX

typedef struct {
    int fd;
    uint64_t at;               /* the file offset of chunk 0 */
    unsigned char *buf;        /* slots chunks */
    int slots;                 /* CHUNK_SLOTS, or 1 for one thread */
    XXH3_state_t *hash[2];     /* "all", "body"; either may be NULL */
    pthread_mutex_t lock;
    pthread_cond_t moved;      /* a chunk was read or hashed, or an error */
    /* under lock: */
    int64_t claimed;           /* chunks handed out to be read */
    int64_t held[CHUNK_SLOTS]; /* the chunk a slot holds once read; -1 none */
    size_t got[CHUNK_SLOTS];   /* its bytes */
    int64_t next[2];           /* the chunk each hash takes next */
    int busy[2];               /* a thread is feeding that hash */
    int64_t last;              /* the file's last chunk, once a read came short */
    uint64_t length;           /* bytes hashed by the first hash */
    int err;                   /* errno of a failed read */
} hash_pass;

/* Feeds the n bytes at file offset at to hash h of hash ("all", "body"). */
static void feed(XXH3_state_t *const hash[2], int h, const unsigned char *b, size_t n,
                 uint64_t at)
{
    if (h == 0) {
        XXH3_64bits_update(hash[0], b, n);
        return;
    }
    size_t skip = at >= EMBER__FSUM_BLOCK ? 0
                  : n < EMBER__FSUM_BLOCK - at ? n : (size_t)(EMBER__FSUM_BLOCK - at);
    if (n > skip)
        XXH3_128bits_update(hash[1], b + skip, n - skip);
}

/* A hash whose next chunk is in the ring and that nobody feeds, or -1. */
static int hash_ready(const hash_pass *p)
{
    for (int h = 0; h < 2; h++) {
        int64_t c = p->next[h];
        if (p->hash[h] && !p->busy[h] && c <= p->last &&
            p->held[c % p->slots] == c)
            return h;
    }
    return -1;
}

/* Whether chunk c can be read into its slot: every hash is past the
 * chunk the slot held before. */
static int slot_free(const hash_pass *p, int64_t c)
{
    for (int h = 0; h < 2; h++)
        if (p->hash[h] && p->next[h] <= c - p->slots)
            return 0;
    return 1;
}

static int pass_done(const hash_pass *p)
{
    for (int h = 0; h < 2; h++)
        if (p->hash[h] && p->next[h] <= p->last)
            return p->err != 0;
    return 1;
}

/* One thread's share of the pass; returns when the pass is done. */
static void pass_run(hash_pass *p)
{
    pthread_mutex_lock(&p->lock);
    while (!pass_done(p)) {
        int h = p->err ? -1 : hash_ready(p);
        int64_t c = h >= 0 ? p->next[h] : p->claimed;
        int slot = (int)(c % p->slots);
        unsigned char *b = p->buf + (size_t)slot * CHUNK_BYTES;
        if (h >= 0) {
            p->busy[h] = 1;
            size_t n = p->got[slot];
            pthread_mutex_unlock(&p->lock);
            feed(p->hash, h, b, n, p->at + (uint64_t)c * CHUNK_BYTES);
            pthread_mutex_lock(&p->lock);
            p->length += (h == 0 || !p->hash[0]) ? n : 0;
            p->next[h]++;
            p->busy[h] = 0;
        } else if (!p->err && c <= p->last && slot_free(p, c)) {
            p->claimed++;
            pthread_mutex_unlock(&p->lock);
            long long k = ember__pread_full(p->fd, b, CHUNK_BYTES,
                                            p->at + (uint64_t)c * CHUNK_BYTES);
            int e = errno;
            pthread_mutex_lock(&p->lock);
            if (k < 0) {
                /* a chunk past a known end is not read by one thread */
                if (c <= p->last)
                    p->err = e ? e : EIO;
            } else {
                p->held[slot] = c;
                p->got[slot] = (size_t)k;
                if (k < (ssize_t)CHUNK_BYTES && c < p->last)
                    p->last = c;
            }
        } else {
            pthread_cond_wait(&p->moved, &p->lock);
            continue;
        }
        pthread_cond_broadcast(&p->moved);
    }
    pthread_mutex_unlock(&p->lock);
}

/* ---- the hashing pass over a mapping ---------------------------------------
 *
 * The ring's reads copy a page-cached file, and the copy costs about as
 * much as the hashes. From a mapping each hash reads the page cache in
 * place, a piece of MAP_PIECE bytes at a time, one thread a hash (one
 * thread feeds both in turn), and the pieces every hash is past are handed
 * back (MADV_DONTNEED: the page cache keeps them, and the process's
 * resident size stays a piece or two). GAPBS's scale-20 .el (436 MB, page
 * cached): 0.026-0.032 s on one thread, against 0.048-0.058 s through the
 * ring on two (a second thread faulting the pieces in ahead,
 * MADV_POPULATE_READ, gained nothing); the scale-20 .h5 (276 MB, both
 * hashes) about 0.020 against 0.033 s. The mapping is guarded as
 * mapfile.c's, so a file truncated meanwhile reads zeros instead of
 * raising SIGBUS; a pass during which the file's size moved is thrown
 * away for one through the ring, whose reads then say what they saw. */

#define MAP_PIECE ((uint64_t)1 << 20)
#define MAP_MIN (4 * MAP_PIECE) /* smaller files go through the ring */

typedef struct {
    const unsigned char *data;   /* the file from offset 0 */
    uint64_t at, end;            /* the bytes to hash */
    XXH3_state_t *hash[2];       /* "all", "body"; either may be NULL */
    _Atomic uint64_t done[2];    /* the pieces each hash has fed (from 0) */
    _Atomic uint64_t released;   /* the pieces handed back */
} map_pass;

void (*ember__fsum_piece_hook)(uint64_t piece);

/* Feeds the hashes of mask (bit h: hash h) every piece in order; then
 * hands back the pieces that every hash is past. */
static void map_feed(map_pass *p, unsigned mask)
{
    const uint64_t pieces = (p->end + MAP_PIECE - 1) / MAP_PIECE;
    for (uint64_t c = p->at / MAP_PIECE; c < pieces; c++) {
        uint64_t lo = c * MAP_PIECE > p->at ? c * MAP_PIECE : p->at;
        uint64_t hi = (c + 1) * MAP_PIECE < p->end ? (c + 1) * MAP_PIECE : p->end;
        for (int h = 0; h < 2; h++)
            if (mask >> h & 1) {
                feed(p->hash, h, p->data + lo, (size_t)(hi - lo), lo);
                atomic_store(&p->done[h], c + 1);
            }
        if (ember__fsum_piece_hook)
            ember__fsum_piece_hook(c);
        uint64_t past = pieces;
        for (int h = 0; h < 2; h++)
            if (p->hash[h] && atomic_load(&p->done[h]) < past)
                past = atomic_load(&p->done[h]);
        uint64_t r = atomic_load(&p->released);
        while (r < past && !atomic_compare_exchange_weak(&p->released, &r, past))
            ;
        if (r < past) /* (the length is rounded up to whole pages, all mapped) */
            (void)madvise((void *)(p->data + r * MAP_PIECE),
                          (size_t)((past < pieces ? past * MAP_PIECE : p->end) - r * MAP_PIECE),
                          MADV_DONTNEED);
    }
}

/* hash_stream's pass from a mapping of the file (above): 1 when it hashed
 * the file, 0 when it did not (a file too small, not regular, not
 * mappable, no SIGBUS guard free, or its size moved meanwhile); the
 * hashes are then reset as given. */
static int hash_mapped(int fd, uint64_t at, XXH3_state_t *all, XXH3_state_t *body,
                       int threads, uint64_t *end)
{
    struct stat st;
    int own = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= (off_t)MAP_MIN
                  ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    ember__mapped m;
    if (own < 0 || ember__map_fd(&m, own, "", NULL) != EMBER_OK)
        return 0;
    map_pass p = {.data = (const unsigned char *)m.data, .at = at, .end = m.size,
                  .hash = {all, body}};
    int ok = m.slot >= 0 && at < m.size;
    if (ok && all && body && threads > 1) {
        /* a team of one (inside another parallel region): both hashes */
#pragma omp parallel num_threads(2)
        map_feed(&p, omp_get_num_threads() > 1 ? 1u << omp_get_thread_num() : 3u);
    } else if (ok) {
        map_feed(&p, (all ? 1u : 0u) | (body ? 2u : 0u));
    }
    ok = ok && !ember__map_shrank(&m) && fstat(fd, &st) == 0 &&
         (uint64_t)st.st_size == m.size;
    ember__unmap_file(&m);
    if (ok) {
        *end = p.end;
        return 1;
    }
    if (all)
        (void)XXH3_64bits_reset(all);
    if (body)
        (void)XXH3_128bits_reset(body);
    return 0;
}

/* Streams the file from offset at to its end into the hashes all (every
 * byte) and body (those from EMBER__FSUM_BLOCK on), either may be NULL,
 * with up to threads threads: from a mapping when it can (hash_mapped),
 * else through the ring. *end gets the offset where the file ended.
 * 0, or -1 with errno. */
static int hash_stream(int fd, uint64_t at, XXH3_state_t *all, XXH3_state_t *body,
                       int threads, uint64_t *end)
{
    if (hash_mapped(fd, at, all, body, threads, end))
        return 0;
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    hash_pass p = {.fd = fd, .at = at, .hash = {all, body}, .last = NO_END,
                   .slots = threads > 1 ? CHUNK_SLOTS : 1};
    for (int i = 0; i < CHUNK_SLOTS; i++)
        p.held[i] = -1;
    /* page-aligned: the chunks start at 0 or 512 modulo 4 KiB in the file,
     * so the kernel's copies are never the slow kind (ember__copy); a
     * malloc of this size is 16 bytes past a page (66-100 against 23-26
     * ms for a 276 MB file on 2 threads) */
    void *ring = NULL;
    if (posix_memalign(&ring, 4096, (size_t)p.slots * CHUNK_BYTES) != 0)
        ring = NULL;
    p.buf = ring;
    if (!p.buf || pthread_mutex_init(&p.lock, NULL)) {
        free(p.buf);
        errno = ENOMEM;
        return -1;
    }
    if (pthread_cond_init(&p.moved, NULL)) {
        pthread_mutex_destroy(&p.lock);
        free(p.buf);
        errno = ENOMEM;
        return -1;
    }
    if (threads > 1) {
#pragma omp parallel num_threads(threads)
        pass_run(&p);
    } else {
        pass_run(&p);
    }
    pthread_cond_destroy(&p.moved);
    pthread_mutex_destroy(&p.lock);
    free(p.buf);
    *end = at + p.length;
    if (p.err)
        errno = p.err;
    return p.err ? -1 : 0;
}

/* XXH3-128 of bytes [EMBER__FSUM_BLOCK, end of file), in canonical order;
 * *length gets the bytes read in all, block included (a file truncated
 * meanwhile ends early, and the caller's length check fails it). */
static int hash_body(int fd, unsigned char out[16], uint64_t *length)
{
    XXH3_state_t st;
    if (XXH3_128bits_reset(&st) == XXH_ERROR)
        return -1;
    if (hash_stream(fd, EMBER__FSUM_BLOCK, NULL, &st, 1, length))
        return -1;
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits_digest(&st));
    memcpy(out, c.digest, 16);
    return 0;
}

/* ---- files verified by ember_file_hash ------------------------------------ */

typedef struct {
    int used;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtim, ctim;
    unsigned char hash[16];
} memo_entry;

static memo_entry memo[MEMO_SLOTS];
static unsigned memo_next;
static unsigned long memo_hits;
static long long memo_age_ns = 2000000000LL; /* 2 s: FAT's time stamps are that coarse */
static pthread_mutex_t memo_mutex = PTHREAD_MUTEX_INITIALIZER;

static int same_time(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
           a->st_size == b->st_size && same_time(a->st_mtim, b->st_mtim) &&
           same_time(a->st_ctim, b->st_ctim);
}

static long long ns_of(struct timespec t)
{
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void memo_add(const struct stat *st, const unsigned char hash[16])
{
    pthread_mutex_lock(&memo_mutex);
    memo_entry *e = &memo[memo_next++ % MEMO_SLOTS];
    for (int i = 0; i < MEMO_SLOTS; i++)
        if (memo[i].used && memo[i].dev == st->st_dev && memo[i].ino == st->st_ino)
            e = &memo[i]; /* the same file again: replace its entry */
    *e = (memo_entry){1, st->st_dev, st->st_ino, st->st_size, st->st_mtim,
                      st->st_ctim, {0}};
    memcpy(e->hash, hash, 16);
    pthread_mutex_unlock(&memo_mutex);
}

/* Whether the file of st, whose header gives hash, was verified unchanged. */
static int memo_has(const struct stat *st, const unsigned char hash[16], int count)
{
    int hit = 0;
    pthread_mutex_lock(&memo_mutex);
    for (int i = 0; i < MEMO_SLOTS && !hit; i++) {
        const memo_entry *e = &memo[i];
        struct stat was = {0};
        was.st_dev = e->dev;
        was.st_ino = e->ino;
        was.st_size = e->size;
        was.st_mtim = e->mtim;
        was.st_ctim = e->ctim;
        hit = e->used && same_file(&was, st) && memcmp(e->hash, hash, 16) == 0;
    }
    memo_hits += (unsigned long)(hit && count);
    pthread_mutex_unlock(&memo_mutex);
    return hit;
}

static unsigned long checks_hashed;

unsigned long ember__fsum_checks_hashed(void)
{
    pthread_mutex_lock(&memo_mutex);
    unsigned long n = checks_hashed;
    pthread_mutex_unlock(&memo_mutex);
    return n;
}

unsigned long ember__fsum_memo_hits(void)
{
    pthread_mutex_lock(&memo_mutex);
    unsigned long n = memo_hits;
    pthread_mutex_unlock(&memo_mutex);
    return n;
}

void ember__fsum_memo_clear(long long age_ns)
{
    pthread_mutex_lock(&memo_mutex);
    memset(memo, 0, sizeof memo);
    memo_age_ns = age_ns;
    pthread_mutex_unlock(&memo_mutex);
}

/* Fills block with the header for a file of length bytes whose body hashes
 * to hash (XXH3-128, canonical order). */
static void make_header(unsigned char block[EMBER__FSUM_BLOCK],
                        const unsigned char hash[16], uint64_t length)
{
    memset(block, 0, EMBER__FSUM_BLOCK);
    memcpy(block, MAGIC, 8);
    put_le(block + OFF_VERSION, VERSION, 4);
    put_le(block + OFF_BLOCK, EMBER__FSUM_BLOCK, 4);
    put_le(block + OFF_LENGTH, length, 8);
    memcpy(block + OFF_HASH, hash, 16);
    snprintf((char *)block + OFF_TEXT, EMBER__FSUM_BLOCK - OFF_TEXT,
             "ember whole-file checksum v1 (XXH3); see "
             "docs/checkpoint-format.md\n");
    self_hash(block, block + OFF_SELF);
}

int ember__fsum_seal(const char *path, char *msg)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return ember__err(msg, EMBER_EIO, "%s: cannot open to seal: %s", path,
                          strerror(errno));
    unsigned char block[EMBER__FSUM_BLOCK], sig[8], hash[16];
    uint64_t length = 0;
    int rc = EMBER_OK;
    if (ember__pread_full(fd, sig, sizeof sig, EMBER__FSUM_BLOCK) != (long long)sizeof sig ||
        memcmp(sig, ember__hdf5_sig, sizeof sig) != 0)
        rc = ember__err(msg, EMBER_EINVAL, "%s: no %d-byte HDF5 user block to "
                        "hold the checksum", path, EMBER__FSUM_BLOCK);
    else if (hash_body(fd, hash, &length))
        rc = ember__err(msg, EMBER_EIO, "%s: cannot read to seal: %s", path,
                        strerror(errno ? errno : EIO));
    if (rc == EMBER_OK) {
        make_header(block, hash, length);
        ssize_t k;
        do
            k = pwrite(fd, block, sizeof block, 0);
        while (k < 0 && errno == EINTR);
        if (k != (ssize_t)sizeof block)
            rc = ember__err(msg, EMBER_EIO, "%s: cannot write the checksum "
                            "header: %s", path, k < 0 ? strerror(errno)
                                                      : "short write");
    }
    if (close(fd) != 0 && rc == EMBER_OK)
        rc = ember__err(msg, EMBER_EIO, "%s: close after sealing: %s", path,
                        strerror(errno));
    return rc;
}

int ember__fsum_seal_image(unsigned char *image, size_t length,
                           const unsigned char *(*piece)(void *arg, size_t lo,
                                                         size_t *n),
                           void *arg, char *msg)
{
    /* the first block of the file must be there to be checked */
    size_t first = length < 2 * EMBER__FSUM_BLOCK ? length : 2 * EMBER__FSUM_BLOCK;
    size_t got = first;
    if (piece && first && (piece(arg, 0, &got) != image || got != first))
        return ember__err(msg, EMBER_EINVAL, "file image: its first bytes are "
                          "not in the image");
    if (length < EMBER__FSUM_BLOCK + sizeof ember__hdf5_sig ||
        memcmp(image + EMBER__FSUM_BLOCK, ember__hdf5_sig, sizeof ember__hdf5_sig) != 0)
        return ember__err(msg, EMBER_EINVAL, "file image: no %d-byte HDF5 user "
                          "block to hold the checksum", EMBER__FSUM_BLOCK);
    XXH128_hash_t h;
    if (!piece) {
        h = XXH3_128bits(image + EMBER__FSUM_BLOCK, length - EMBER__FSUM_BLOCK);
    } else {
        /* in steps, so that what piece copies is hashed while in the cache */
        const size_t step = (size_t)64 << 10;
        XXH3_state_t st;
        if (XXH3_128bits_reset(&st) == XXH_ERROR)
            return ember__err(msg, EMBER_EIO, "file image: hash state");
        XXH3_128bits_update(&st, image + EMBER__FSUM_BLOCK, first - EMBER__FSUM_BLOCK);
        for (size_t lo = first; lo < length;) {
            size_t n = length - lo < step ? length - lo : step;
            const unsigned char *p = piece(arg, lo, &n);
            XXH3_128bits_update(&st, p, n);
            lo += n;
        }
        h = XXH3_128bits_digest(&st);
    }
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, h);
    make_header(image, c.digest, (uint64_t)length);
    return EMBER_OK;
}

/* Whether a block without the magic is ember's header all the same (its
 * magic damaged): its fields say version 1, this block size and the
 * file's length, or its line of text begins where make_header puts it. A
 * foreign file's user block (zeros, as h5py leaves it) is not; a header
 * damaged whole cannot be told from one. */
static int header_but_magic(const unsigned char *block, uint64_t size)
{
    static const char text[] = "ember whole-file checksum";
    return (get_le(block + OFF_VERSION, 4) == VERSION &&
            get_le(block + OFF_BLOCK, 4) == EMBER__FSUM_BLOCK &&
            get_le(block + OFF_LENGTH, 8) == size) ||
           memcmp(block + OFF_TEXT, text, sizeof text - 1) == 0;
}

/* What the block says, or why it cannot be trusted. */
static int check_block(const char *path, const unsigned char *block,
                       uint64_t size, char *msg)
{
    unsigned char self[8];
    if (memcmp(block, MAGIC, 8) != 0 && header_but_magic(block, size))
        return ember__err(msg, EMBER_ECORRUPT, "%s: checksum header is damaged "
                          "(its first 8 bytes are not \"" MAGIC "\", the rest "
                          "is ember's header): cannot be verified", path);
    if (memcmp(block, MAGIC, 8) != 0)
        return ember__err(msg, EMBER__FSUM_NONE,
                          memcmp(block, ember__hdf5_sig, 8) == 0
                              ? "%s: no ember checksum header (an HDF5 file written "
                                "by an early ember 0.1.0 build or another program): "
                                "cannot be verified"
                              : "%s: no ember checksum header, and it does not start "
                                "as an HDF5 file does (not an HDF5 file, or its first "
                                "bytes are damaged): cannot be verified", path);
    self_hash(block, self);
    if (memcmp(self, block + OFF_SELF, 8) != 0)
        return ember__err(msg, EMBER_ECORRUPT,
                          "%s: checksum header is damaged (its own hash "
                          "differs)", path);
    uint64_t version = get_le(block + OFF_VERSION, 4);
    if (version != VERSION || get_le(block + OFF_BLOCK, 4) != EMBER__FSUM_BLOCK)
        return ember__err(msg, EMBER_EFORMAT,
                          "%s: checksum header version %llu (block %llu); "
                          "this ember reads version %u (block %d)", path,
                          (unsigned long long)version,
                          (unsigned long long)get_le(block + OFF_BLOCK, 4),
                          VERSION, EMBER__FSUM_BLOCK);
    uint64_t want = get_le(block + OFF_LENGTH, 8);
    if (want != size)
        return ember__err(msg, EMBER_ECORRUPT,
                          "%s: %llu bytes, its checksum header says %llu "
                          "(%s, or written to since ember sealed it: h5py and "
                          "other HDF5 writers change its length)", path,
                          (unsigned long long)size, (unsigned long long)want,
                          size < want ? "truncated" : "extended");
    return EMBER_OK;
}

int ember__fsum_unsealed_hdf5(const char *path)
{
    unsigned char block[EMBER__FSUM_BLOCK];
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    int is = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
             st.st_size >= (off_t)sizeof block &&
             ember__pread_full(fd, block, sizeof block, 0) == (long long)sizeof block &&
             memcmp(block, ember__hdf5_sig, sizeof ember__hdf5_sig) == 0 &&
             !header_but_magic(block, (uint64_t)st.st_size);
    if (fd >= 0)
        close(fd);
    return is;
}

void ember__fsum_edit_hint(int rc, char *msg)
{
    size_t len = msg ? strlen(msg) : 0;
    if (rc == EMBER_ECORRUPT && msg && strstr(msg, "since ember sealed it"))
        snprintf(msg + len, EMBER_MSG_SIZE - len, "; to read a file edited on purpose, "
                 "drop its seal: h5unjam -i FILE -u /dev/null -o COPY");
}

int ember__fsum_vouched(int fd)
{
    struct stat st;
    unsigned char block[EMBER__FSUM_BLOCK];
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
           ember__pread_full(fd, block, sizeof block, 0) == (long long)sizeof block &&
           check_block("", block, (uint64_t)st.st_size, NULL) == EMBER_OK &&
           memo_has(&st, block + OFF_HASH, 0);
}

int ember__fsum_check(const char *path, char *msg)
{
    return ember__fsum_check_id(path, NULL, msg);
}

int ember__fsum_check_id(const char *path, ember__file_id *id, char *msg)
{
    /* O_NONBLOCK: a FIFO given as a file fails below instead of waiting
     * for a writer; on a regular file it changes nothing. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return ember__err(msg, errno == ENOENT || errno == ENOTDIR
                                   ? EMBER_ENOTFOUND : EMBER_EIO,
                          "%s: %s", path, strerror(errno));
    struct stat st;
    unsigned char block[EMBER__FSUM_BLOCK], hash[16];
    uint64_t length = 0;
    int rc = EMBER_OK;
    if (fstat(fd, &st) != 0)
        rc = ember__err(msg, EMBER_EIO, "%s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = ember__err(msg, EMBER_EINVAL, "%s: not a regular file", path);
    else if (st.st_size < EMBER__FSUM_BLOCK)
        rc = ember__err(msg, ember__pread_full(fd, block, 8, 0) == 8 &&
                                     memcmp(block, MAGIC, 8) == 0
                                 ? EMBER_ECORRUPT : EMBER__FSUM_NONE,
                        "%s: %lld bytes: too short to hold an ember checksum "
                        "header (truncated, or not written by ember)", path,
                        (long long)st.st_size);
    else if (ember__pread_full(fd, block, sizeof block, 0) != (long long)sizeof block)
        rc = ember__err(msg, EMBER_EIO, "%s: cannot read the checksum header: %s",
                        path, strerror(errno ? errno : EIO));
    else if ((rc = check_block(path, block, (uint64_t)st.st_size, msg)) == EMBER_OK &&
             !memo_has(&st, block + OFF_HASH, 1)) {
        pthread_mutex_lock(&memo_mutex);
        checks_hashed++;
        pthread_mutex_unlock(&memo_mutex);
        if (hash_body(fd, hash, &length))
            rc = ember__err(msg, EMBER_EIO, "%s: read error while verifying: "
                            "%s", path, strerror(errno ? errno : EIO));
        else if (length != get_le(block + OFF_LENGTH, 8))
            rc = ember__err(msg, EMBER_ECORRUPT, "%s: changed size while being "
                            "verified", path);
        else if (memcmp(hash, block + OFF_HASH, 16) != 0)
            rc = ember__err(msg, EMBER_ECORRUPT, "%s: content checksum "
                            "mismatch (XXH3-128 over bytes %d..%llu): the file "
                            "is damaged, or was written to since ember sealed it",
                            path, EMBER__FSUM_BLOCK, (unsigned long long)length);
    }
    close(fd);
    if (rc == EMBER_OK && id) {
        id->size = (uint64_t)st.st_size;
        memcpy(id->head, block, sizeof id->head);
    }
    return rc;
}

int ember_file_hash(const char *path, uint64_t *bytes, uint64_t *xxh3, char *msg)
{
    return ember_file_hash_threads(path, 0, bytes, xxh3, msg);
}

/* Size and XXH3-64 of every byte of the file; a sealed file is verified
 * in the same pass (XXH3-128 of its bytes after the block) and, when it
 * verifies and is old enough, remembered (see the top of this file). */
int ember_file_hash_threads(const char *path, int threads, uint64_t *bytes,
                            uint64_t *xxh3, char *msg)
{
    ember__msg_clear(msg);
    struct timespec start;
    clock_gettime(CLOCK_REALTIME, &start);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ember__err(msg, errno == ENOENT || errno == ENOTDIR
                                   ? EMBER_ENOTFOUND : EMBER_EIO,
                          "%s: %s", path, strerror(errno));
    struct stat st0, st1;
    unsigned char block[EMBER__FSUM_BLOCK];
    char scratch[EMBER_MSG_SIZE];
    int sealed = 0, rc = EMBER_OK;
    XXH3_state_t all, body;
    if (XXH3_64bits_reset(&all) == XXH_ERROR ||
        XXH3_128bits_reset(&body) == XXH_ERROR)
        rc = ember__err(msg, EMBER_ENOMEM, "%s: out of memory to hash it", path);
    else if (fstat(fd, &st0) != 0)
        rc = ember__err(msg, EMBER_EIO, "%s: %s", path, strerror(errno));
    else if (S_ISREG(st0.st_mode) && st0.st_size >= EMBER__FSUM_BLOCK &&
             ember__pread_full(fd, block, sizeof block, 0) == (long long)sizeof block)
        sealed = check_block(path, block, (uint64_t)st0.st_size, scratch) == EMBER_OK;
    /* The file is remembered only when no one could have written it during
     * the pass: a read lease held from before it to after it. A writer
     * that keeps a writable shared mapping changes the bytes with stores
     * into pages it has already dirtied, which move no time stamp; the
     * kernel grants no lease while such a mapping exists, and once the
     * lease was held, any writer must map or open the file anew, and its
     * first store or write moves the change time that the memo keeps. */
    int leased = sealed && ember__lease_take(fd) == 1;
    /* more threads than chunk slots (plus the two hashes) find no work */
    if (threads <= 0)
        threads = omp_get_max_threads();
    if (threads > CHUNK_SLOTS + 2)
        threads = CHUNK_SLOTS + 2;
    if (rc == EMBER_OK && st0.st_size <= (off_t)CHUNK_BYTES)
        threads = 1;
    uint64_t n = 0;
    if (rc == EMBER_OK && hash_stream(fd, 0, &all, sealed ? &body : NULL, threads, &n))
        rc = ember__err(msg, errno == ENOMEM ? EMBER_ENOMEM : EMBER_EIO, "%s: %s", path,
                        strerror(errno));
    if (rc == EMBER_OK) {
        *bytes = n;
        *xxh3 = XXH3_64bits_digest(&all);
    }
    if (rc == EMBER_OK && leased && ember__lease_whole(fd) &&
        n == get_le(block + OFF_LENGTH, 8) && fstat(fd, &st1) == 0 && same_file(&st0, &st1) &&
        ns_of(st1.st_mtim) <= ns_of(start) - memo_age_ns &&
        ns_of(st1.st_ctim) <= ns_of(start) - memo_age_ns) {
        XXH128_canonical_t c;
        XXH128_canonicalFromHash(&c, XXH3_128bits_digest(&body));
        if (memcmp(c.digest, block + OFF_HASH, 16) == 0)
            memo_add(&st1, c.digest);
    }
    close(fd);
    return rc;
}
