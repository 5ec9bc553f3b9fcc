/* store.c: the block store, where persisted partitions and shuffle outputs
 * live between actions, keyed by (dataset id, partition).
 *
 * Callers: exec.c puts a partition as a task finishes computing it and gets
 * it back (from any task, concurrently) when a later action needs it; ds.c
 * drops a dataset's blocks when it is unpersisted or freed; checkpoint.c
 * moves a local checkpoint's cached blocks to a level that spills
 * (relevel); broadcasts charge their copies against the same budget
 * (charge); ctx.c creates and destroys the store with the context.
 * Floor 1 of the engine (docs/design.md): it knows ids, partitions and
 * bytes, never a dataset, and calls only the allocator and type helpers.
 *
 * Every block is an entry in exactly one of these places:
 *   resident  in memory, on the LRU list, counted in `used` against the
 *             context's budget (raw bytes, or compressed bytes for _SER);
 *   spilling  out of the budget, its bytes still in memory while one thread
 *             writes them to the spill dir without the lock;
 *   on disk   one file per block in the spill dir (raw, or compressed for
 *             _SER), made lazily with mkdtemp under ctx->scratch_dir; the
 *             entry keeps the XXH3-64 of the bytes written, and every read
 *             checks the file's size and hash: a spill dir lives in a
 *             temporary directory that cleaners prune, on disks that fail,
 *             and a block read back wrong would be a wrong result;
 *   dead      out of the table (dropped or replaced) but still pinned; it
 *             waits on the limbo list and is freed by its last unpin.
 * A pin is a view or an in-flight read or write: pinned entries are never
 * evicted or freed, so the lock is not held while compressing, decompressing
 * or doing disk I/O. Memory that is no longer resident (a spilled block some
 * view still points at) is freed by the last unpin; it is outside the budget
 * meanwhile, so real use can briefly exceed the budget by the pinned bytes.
 * DISK_ONLY blocks, and *_AND_DISK blocks that cannot get room, start out
 * spilling. A failed write loses that block (its owner recomputes it) and
 * the put that caused it returns EMBER_EIO. A block read back from disk
 * stays on disk: reads do not bring it back into memory. A read that
 * fails its checks returns an error and leaves the block: the executor
 * drops it and recomputes it from lineage, or reports it where there is no
 * lineage (a local checkpoint's blocks are the only copy).
 *
 * Lookups go through a hash table of datasets, each holding an array indexed
 * by partition (partitions are dense, 0..n-1), so get is O(1) and drop is
 * O(partitions of that dataset). Lock order: store lock, then ctx->stats_lock.
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>
#include <zstd_errors.h>

typedef struct entry entry;
typedef struct dsrec dsrec;

struct entry {
    uint64_t ds_id;
    size_t part;
    ember_level level;
    size_t nrec, recsize;
    void *mem;          /* the stored bytes, valid while has_mem */
    size_t bytes;       /* stored size: raw, or compressed for _SER */
    uint64_t file;      /* spill file number, set when a write is planned */
    uint64_t sum;       /* XXH3-64 of the bytes in the spill file */
    int pins;
    bool has_mem, resident, spilling, on_disk, dead;
    dsrec *owner;       /* the dataset holding the entry; NULL once dead */
    entry *prev, *next; /* LRU list while resident, limbo while dead */
    entry *job;         /* next in a spill list or a burial list */
};

struct dsrec {
    uint64_t id;
    entry **parts; /* by partition number, NULL where absent */
    size_t cap;
    size_t count;  /* non-NULL parts */
    dsrec *next;   /* hash chain */
};

typedef struct {
    entry *head, *tail;
} elist;

struct ember__store {
    ember_ctx *ctx;
    omp_lock_t lock;
    dsrec **bucket;   /* power-of-two number of chains */
    size_t nbucket, nds;
    elist lru;        /* resident entries, least recently used first */
    elist limbo;      /* dead entries still pinned */
    size_t used;      /* bytes of resident entries */
    size_t charged;   /* bytes held outside (broadcasts), on the budget */
    size_t disk;      /* bytes of entries on disk, not yet dead */
    size_t pinned;    /* bytes of resident entries that are pinned */
    size_t nmem, ndisk;
    uint64_t next_file;
    struct {
        uint64_t evictions, spills, disk_reads, cache_hits;
    } delta;          /* counters not yet added to ctx->stats */
    char dir[PATH_MAX]; /* the spill dir, "" until first needed */
    int dir_lock;       /* dir/lock, held while the dir is ours (-1: none) */
    void *spares;       /* freed raw blocks kept for reuse (keep_room) */
    size_t spare_bytes;
};

#define INITIAL_BUCKETS 64
#define SPILL_PATH_SIZE (PATH_MAX + 32)

static bool is_ser(ember_level level)
{
    return level == EMBER_MEMORY_ONLY_SER || level == EMBER_MEMORY_AND_DISK_SER;
}

static bool keeps_disk(ember_level level)
{
    return level == EMBER_MEMORY_AND_DISK ||
           level == EMBER_MEMORY_AND_DISK_SER || level == EMBER_DISK_ONLY;
}

/* ---- locking and statistics ---------------------------------------------- */

static void store_lock(ember__store *s)
{
    omp_set_lock(&s->lock);
}

/* Publishes the store's figures before letting go, so a reader of
 * ember_ctx_stats sees memory_used, the block counts and the counters move
 * together. */
static void store_unlock(ember__store *s)
{
    ember_ctx *ctx = s->ctx;
    omp_set_lock(&ctx->stats_lock);
    ctx->stats.memory_used = s->used;
    ctx->stats.memory_budget = ctx->budget;
    ctx->stats.blocks_in_memory = s->nmem;
    ctx->stats.blocks_on_disk = s->ndisk;
    ctx->stats.broadcast_bytes = s->charged;
    ctx->stats.disk_used = s->disk;
    ctx->stats.evictions += s->delta.evictions;
    ctx->stats.spills += s->delta.spills;
    ctx->stats.disk_reads += s->delta.disk_reads;
    ctx->stats.cache_hits += s->delta.cache_hits;
    omp_unset_lock(&ctx->stats_lock);
    memset(&s->delta, 0, sizeof s->delta);
    omp_unset_lock(&s->lock);
}

/* ---- entry lists ----------------------------------------------------------- */

static void list_push(elist *l, entry *e)
{
    e->next = NULL;
    e->prev = l->tail;
    if (l->tail)
        l->tail->next = e;
    else
        l->head = e;
    l->tail = e;
}

static void list_remove(elist *l, entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NULL;
}

/* ---- the dataset table ------------------------------------------------------ */

static size_t bucket_of(const ember__store *s, uint64_t id)
{
    return (size_t)(ember__hash64(id) & (s->nbucket - 1));
}

static dsrec *ds_find(ember__store *s, uint64_t id)
{
    dsrec *d = s->bucket[bucket_of(s, id)];
    while (d && d->id != id)
        d = d->next;
    return d;
}

/* Doubles the table. A failure only makes chains longer, so it is ignored. */
static void ds_grow_table(ember__store *s)
{
    size_t nb = s->nbucket * 2;
    dsrec **nbkt = ember__calloc(s->ctx, nb, sizeof *nbkt);
    if (!nbkt)
        return;
    for (size_t i = 0; i < s->nbucket; i++) {
        for (dsrec *d = s->bucket[i], *next; d; d = next) {
            next = d->next;
            size_t b = (size_t)(ember__hash64(d->id) & (nb - 1));
            d->next = nbkt[b];
            nbkt[b] = d;
        }
    }
    ember__free(s->ctx, s->bucket);
    s->bucket = nbkt;
    s->nbucket = nb;
}

static dsrec *ds_add(ember__store *s, uint64_t id)
{
    dsrec *d = ember__calloc(s->ctx, 1, sizeof *d);
    if (!d)
        return NULL;
    if (s->nds >= 2 * s->nbucket)
        ds_grow_table(s);
    size_t b = bucket_of(s, id);
    d->id = id;
    d->next = s->bucket[b];
    s->bucket[b] = d;
    s->nds++;
    return d;
}

static void ds_remove(ember__store *s, dsrec *d)
{
    dsrec **p = &s->bucket[bucket_of(s, d->id)];
    while (*p != d)
        p = &(*p)->next;
    *p = d->next;
    s->nds--;
    ember__free(s->ctx, d->parts);
    ember__free(s->ctx, d);
}

/* Makes d->parts long enough to hold `part`. */
static int ds_reserve(ember__store *s, dsrec *d, size_t part)
{
    if (part >= SIZE_MAX / 2 / sizeof *d->parts)
        return EMBER_ENOMEM;
    size_t cap = d->cap ? d->cap * 2 : 16;
    if (cap <= part)
        cap = part + 1;
    entry **parts = ember__calloc(s->ctx, cap, sizeof *parts);
    if (!parts)
        return EMBER_ENOMEM;
    if (d->cap)
        memcpy(parts, d->parts, d->cap * sizeof *parts);
    ember__free(s->ctx, d->parts);
    d->parts = parts;
    d->cap = cap;
    return EMBER_OK;
}

/* The dataset record where (id, part) goes, made if needed. */
static int slot_for(ember__store *s, uint64_t id, size_t part, dsrec **out)
{
    dsrec *d = ds_find(s, id);
    if (!d && !(d = ds_add(s, id)))
        return EMBER_ENOMEM;
    if (part >= d->cap && ds_reserve(s, d, part)) {
        if (!d->count)
            ds_remove(s, d);
        return EMBER_ENOMEM;
    }
    *out = d;
    return EMBER_OK;
}

static entry *entry_find(ember__store *s, uint64_t id, size_t part)
{
    dsrec *d = ds_find(s, id);
    return d && part < d->cap ? d->parts[part] : NULL;
}

/* ---- entry states (all under the lock) ------------------------------------ */

static void attach(dsrec *d, entry *e)
{
    d->parts[e->part] = e;
    d->count++;
    e->owner = d;
}

static void admit(ember__store *s, entry *e)
{
    e->resident = true;
    list_push(&s->lru, e);
    s->used += e->bytes;
    s->nmem++;
}

static void leave_memory(ember__store *s, entry *e)
{
    list_remove(&s->lru, e);
    s->used -= e->bytes;
    s->nmem--;
    if (e->pins)
        s->pinned -= e->bytes;
    e->resident = false;
}

static void pin(ember__store *s, entry *e)
{
    if (e->pins++ == 0 && e->resident)
        s->pinned += e->bytes;
}

static void push_job(entry **list, entry *e)
{
    e->job = *list;
    *list = e;
}

/* Takes e out of the table. Its memory and file go on `grave` to be freed
 * after the lock is released, or wait in limbo for the last unpin. */
static void detach(ember__store *s, entry *e, entry **grave)
{
    e->owner->parts[e->part] = NULL;
    e->owner->count--;
    e->owner = NULL;
    if (e->resident)
        leave_memory(s, e);
    if (e->on_disk) {
        s->ndisk--;
        s->disk -= e->bytes;
    }
    e->dead = true;
    if (e->pins)
        list_push(&s->limbo, e);
    else
        push_job(grave, e);
}

static void unpin(ember__store *s, entry *e, entry **grave)
{
    if (--e->pins > 0)
        return;
    if (e->resident) {
        s->pinned -= e->bytes;
    } else if (e->dead) {
        list_remove(&s->limbo, e);
        push_job(grave, e);
    } else if (e->has_mem) {
        /* Spilled while a view used it: the disk copy now serves. */
        ember__free(s->ctx, e->mem);
        e->mem = NULL;
        e->has_mem = false;
    }
}

/* The write happens later without the lock; the pin keeps e->mem alive. */
static void plan_spill(ember__store *s, entry *e, entry **spills)
{
    e->spilling = true;
    e->file = ++s->next_file;
    pin(s, e);
    push_job(spills, e);
}

static void finish_spill(ember__store *s, entry *e, int rc, uint64_t sum,
                         entry **grave)
{
    e->spilling = false;
    if (rc == EMBER_OK) {
        e->on_disk = true;
        e->sum = sum;
        s->delta.spills++;
        if (!e->dead) {
            s->ndisk++;
            s->disk += e->bytes;
        }
    } else if (!e->dead) {
        detach(s, e, grave); /* the block is lost; its owner recomputes it */
    }
    unpin(s, e, grave);
}

static void evict(ember__store *s, entry *e, entry **grave, entry **spills)
{
    s->delta.evictions++;
    if (!keeps_disk(e->level)) {
        detach(s, e, grave);
        return;
    }
    leave_memory(s, e);
    plan_spill(s, e, spills);
}

/* Evicts unpinned blocks, least recently used first, until `need` more bytes
 * fit. Like Spark, it never evicts a block of the dataset being stored: a
 * dataset larger than the budget would otherwise push out its own first
 * partitions on every pass and never hit the cache. Evicts nothing and
 * returns false when the evictable blocks are not enough. */
static bool evictable(const entry *e, uint64_t owner)
{
    return !e->pins && e->ds_id != owner;
}

static bool make_room(ember__store *s, size_t need, uint64_t owner,
                      entry **grave, entry **spills)
{
    size_t budget = s->ctx->budget;
    /* Broadcasts hold their bytes outside the store, on the same budget. */
    budget = s->charged < budget ? budget - s->charged : 0;
    if (need > budget || s->pinned > budget - need)
        return false;
    size_t freed = 0;
    for (entry *e = s->lru.head; e && s->used - freed > budget - need; e = e->next)
        if (evictable(e, owner))
            freed += e->bytes;
    if (s->used - freed > budget - need)
        return false;
    entry *e = s->lru.head;
    while (e && s->used > budget - need) {
        entry *next = e->next;
        if (evictable(e, owner))
            evict(s, e, grave, spills);
        e = next;
    }
    return true;
}

/* Freed raw blocks are kept for the next capture of the same size
 * (ember__store_take_room): a loop that caches a new dataset every
 * iteration and drops older ones frees and allocates the same blocks over
 * and over, and the C library gave large freed blocks back to the kernel,
 * so each new block faulted in and cleared fresh pages (14 % of the CPU of
 * the README's loop). Spares live in the budget's free part: kept only
 * while resident blocks, charges and spares fit in the budget, and freed
 * before any block is evicted (drop_spares). And they never hold more
 * bytes than the resident blocks or the blocks freed together with them
 * (a dataset's), the oldest going first: blocks nobody asks for again (a
 * shuffle's outputs, which are not allocated through take_room, or sizes
 * that change every iteration) had piled up to the budget, a quarter of
 * RAM by default, outside ember's own accounting (Spark's PageRank
 * written on ember: 4.5 MB of RSS more an iteration, 980 MB at 200
 * iterations on a 131,072-edge graph; 31 MB now). None under SPARE_MIN
 * (the C library reuses those). A spare holds its size and the next one
 * in its first bytes, newest first. */
#define SPARE_MIN ((size_t)64 << 10)

typedef struct {
    void *next;
    size_t bytes;
} spare;

/* Under the lock: the budget's bytes left beside resident blocks,
 * charges and `more`. */
static size_t budget_left(const ember__store *s, size_t more)
{
    size_t held = s->used + s->charged + more;
    return held < s->ctx->budget ? s->ctx->budget - held : 0;
}

/* Under the lock: keeps the newest spares that fit in `room` bytes and
 * frees the others. */
static void drop_spares(ember__store *s, size_t room)
{
    size_t kept = 0;
    void **at = &s->spares;
    while (*at && kept + ((spare *)*at)->bytes <= room) {
        kept += ((spare *)*at)->bytes;
        at = &((spare *)*at)->next;
    }
    for (void *p = *at, *next; p; p = next) {
        next = ((spare *)p)->next;
        ember__free(s->ctx, p);
    }
    *at = NULL;
    s->spare_bytes = kept;
}

/* Keeps mem, a freed raw block of `bytes`, as a spare, with the spares
 * holding at most the larger of the resident blocks' bytes and `batch`
 * (those of the blocks freed with it). */
static void keep_room(ember__store *s, void *mem, size_t bytes, size_t batch)
{
    bool keep = bytes >= SPARE_MIN;
    if (keep) {
        store_lock(s);
        size_t room = s->used > batch ? s->used : batch, left = budget_left(s, 0);
        room = room < left ? room : left;
        keep = bytes <= room;
        if (keep) {
            drop_spares(s, room - bytes);
            *(spare *)mem = (spare){s->spares, bytes};
            s->spares = mem;
            s->spare_bytes += bytes;
        }
        store_unlock(s);
    }
    if (!keep)
        ember__free(s->ctx, mem);
}

void *ember__store_take_room(ember_ctx *ctx, size_t bytes)
{
    ember__store *s = ctx->store;
    if (!s || bytes < SPARE_MIN)
        return NULL;
    void *got = NULL;
    store_lock(s);
    for (void **at = &s->spares; *at; at = &((spare *)*at)->next)
        if (((spare *)*at)->bytes == bytes) {
            got = *at;
            *at = ((spare *)got)->next;
            s->spare_bytes -= bytes;
            break;
        }
    store_unlock(s);
    return got;
}

/* Puts e in the table, in memory if it fits, else planned for disk or
 * refused. */
static int place(ember__store *s, entry *e, entry **grave, entry **spills)
{
    dsrec *d;
    int rc = slot_for(s, e->ds_id, e->part, &d);
    if (rc)
        return rc;
    if (d->parts[e->part])
        detach(s, d->parts[e->part], grave);
    if (e->level != EMBER_DISK_ONLY)
        drop_spares(s, budget_left(s, e->bytes));
    if (e->level != EMBER_DISK_ONLY && make_room(s, e->bytes, e->ds_id, grave, spills)) {
        attach(d, e);
        admit(s, e);
        return EMBER_OK;
    }
    if (!keeps_disk(e->level)) {
        if (!d->count)
            ds_remove(s, d);
        return EMBER_NOTCACHED;
    }
    attach(d, e);
    plan_spill(s, e, spills);
    return EMBER_OK;
}

/* ---- spill files ---------------------------------------------------------- */

static const char *spill_path(const ember__store *s, uint64_t file, char *buf)
{
    snprintf(buf, SPILL_PATH_SIZE, "%s/%016" PRIx64 ".blk", s->dir, file);
    return buf;
}

/* Empties dir and removes it. */
static void remove_tree(const char *path)
{
    DIR *dir = opendir(path);
    if (dir) {
        struct dirent *de;
        while ((de = readdir(dir)) != NULL)
            if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                unlinkat(dirfd(dir), de->d_name, 0);
        closedir(dir);
    }
    rmdir(path);
}

/* Removes the spill dirs in base that a killed process left: those whose
 * lock is an orphan (ember__lock_orphan). A dir with no lock file (being
 * made, or by an ember before 0.2) is left alone. */
static void sweep_orphans(const char *base)
{
    DIR *d = opendir(base);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char path[PATH_MAX], lock[PATH_MAX + 8];
        if (strncmp(de->d_name, "ember-", 6) != 0 || strlen(de->d_name) != 12 ||
            snprintf(path, sizeof path, "%s/%s", base, de->d_name) >= (int)sizeof path)
            continue;
        snprintf(lock, sizeof lock, "%s/lock", path);
        int fd = ember__lock_orphan(lock);
        if (fd < 0)
            continue;
        remove_tree(path); /* holding its lock: no other sweeper is in it */
        close(fd);
    }
    closedir(d);
}

/* Under the lock: one mkdtemp per store, on the first spill. The dir holds
 * a lock file, made under another name and renamed once locked (and its
 * pid written), so no sweeper ever sees it free while its maker lives; the
 * first spill also sweeps away the dirs of killed processes. */
static int ensure_dir(ember__store *s, char *msg)
{
    if (s->dir[0])
        return EMBER_OK;
    const char *base = s->ctx->scratch_dir ? s->ctx->scratch_dir : "/tmp";
    char tmpl[PATH_MAX], lock[PATH_MAX + 16], made[PATH_MAX + 16];
    int n = snprintf(tmpl, sizeof tmpl, "%s/ember-XXXXXX", base);
    if (n < 0 || (size_t)n >= sizeof tmpl)
        return ember__err(msg, EMBER_EIO, "scratch dir path too long: '%s'",
                          base);
    sweep_orphans(base);
    if (!mkdtemp(tmpl))
        return ember__err(msg, EMBER_EIO,
                          "cannot create a spill directory in '%s': %s", base,
                          strerror(errno));
    /* The lock only lets a later process sweep the dir should this one be
     * killed: on a file system without locks the dir goes without. */
    char why[EMBER_MSG_SIZE];
    snprintf(lock, sizeof lock, "%s/lock", tmpl);
    snprintf(made, sizeof made, "%s/lock.new", tmpl);
    if (ember__dir_lock(tmpl, "lock.new", "spill directory", &s->dir_lock, why) ==
            EMBER_OK && rename(made, lock) != 0) {
        close(s->dir_lock);
        s->dir_lock = -1;
    }
    unlink(made); /* when the lock or the rename failed */
    memcpy(s->dir, tmpl, (size_t)n + 1);
    return EMBER_OK;
}

/* write(2) may write less than asked (signals, pipes, quotas): loop. */
static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, unsigned char *p, size_t n, size_t *got)
{
    *got = 0;
    while (*got < n) {
        ssize_t r = read(fd, p + *got, n - *got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    return 0;
}

/* *sum gets the hash of what is written, taken from the bytes in memory
 * (e is pinned: they stay put). */
static int write_block(const ember__store *s, const entry *e, uint64_t *sum,
                       char *msg)
{
    char path[SPILL_PATH_SIZE];
    spill_path(s, e->file, path);
    *sum = XXH3_64bits(e->mem, e->bytes);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return ember__err(msg, EMBER_EIO, "cannot create spill file '%s': %s",
                          path, strerror(errno));
    int bad = write_all(fd, e->mem, e->bytes);
    int err = errno;
    /* close() is where some file systems report a failed write. */
    if (close(fd) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    if (!bad)
        return EMBER_OK;
    unlink(path);
    return ember__err(msg, EMBER_EIO, "cannot write spill file '%s': %s", path,
                      strerror(err));
}

/* Reads e's spill file, which must hold exactly e->bytes bytes of hash
 * e->sum, into a new allocation. A file that is gone, short, long or
 * damaged is EMBER_ECORRUPT: the block is lost, whatever removed or
 * changed it (a tmp cleaner, a full disk, a bad sector). */
static int read_block(const ember__store *s, const entry *e, void **out,
                      char *msg)
{
    char path[SPILL_PATH_SIZE];
    spill_path(s, e->file, path);
    size_t bytes = e->bytes;
    unsigned char *buf = NULL;
    int rc = EMBER_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    size_t got = 0;
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = ember__err(msg, errno == ENOENT ? EMBER_ECORRUPT : EMBER_EIO,
                        "cannot read spill file '%s' of block %zu of #%llu: %s",
                        path, e->part, (unsigned long long)e->ds_id,
                        strerror(errno));
    } else if ((uint64_t)st.st_size != bytes) {
        rc = ember__err(msg, EMBER_ECORRUPT,
                        "spill file '%s' of block %zu of #%llu has %lld bytes, "
                        "expected %zu", path, e->part,
                        (unsigned long long)e->ds_id, (long long)st.st_size,
                        bytes);
    } else if (!(buf = ember__malloc(s->ctx, bytes))) {
        rc = EMBER_ENOMEM;
    } else if (read_all(fd, buf, bytes, &got) != 0) {
        rc = ember__err(msg, EMBER_EIO, "cannot read spill file '%s': %s",
                        path, strerror(errno));
    } else if (got != bytes) {
        rc = ember__err(msg, EMBER_ECORRUPT,
                        "spill file '%s' ended after %zu of %zu bytes", path,
                        got, bytes);
    } else if (XXH3_64bits(buf, bytes) != e->sum) {
        rc = ember__err(msg, EMBER_ECORRUPT,
                        "spill file '%s' of block %zu of #%llu fails its "
                        "checksum (changed since it was written)", path,
                        e->part, (unsigned long long)e->ds_id);
    }
    if (fd >= 0)
        close(fd);
    if (rc) {
        ember__free(s->ctx, buf);
        buf = NULL;
    }
    *out = buf;
    return rc;
}

/* Frees entries taken out of the store, without the lock: unlink is I/O. */
static void bury(ember__store *s, entry *grave)
{
    char path[SPILL_PATH_SIZE];
    size_t batch = 0;
    for (entry *e = grave; e; e = e->job)
        batch += e->has_mem && !is_ser(e->level) ? e->bytes : 0;
    for (entry *e = grave, *next; e; e = next) {
        next = e->job;
        if (e->has_mem && !is_ser(e->level))
            keep_room(s, e->mem, e->bytes, batch);
        else if (e->has_mem)
            ember__free(s->ctx, e->mem);
        if (e->on_disk)
            unlink(spill_path(s, e->file, path));
        ember__free(s->ctx, e);
    }
}

/* Writes the planned blocks, then records each outcome. A failure drops
 * that block; the first one's message is kept. */
static int run_spills(ember__store *s, entry *spills, char *msg)
{
    if (!spills)
        return EMBER_OK;
    store_lock(s);
    int first = ensure_dir(s, msg);
    store_unlock(s);
    bool dir_ok = first == EMBER_OK;
    entry *grave = NULL;
    for (entry *e = spills, *next; e; e = next) {
        next = e->job;
        uint64_t sum = 0;
        int rc = dir_ok ? write_block(s, e, &sum, first ? NULL : msg) : first;
        if (!first)
            first = rc;
        store_lock(s);
        finish_spill(s, e, rc, sum, &grave);
        store_unlock(s);
    }
    bury(s, grave);
    return first;
}

/* ---- create, destroy ------------------------------------------------------ */

int ember__store_create(ember_ctx *ctx, char *msg)
{
    ember__store *s = ember__calloc(ctx, 1, sizeof *s);
    dsrec **bucket = ember__calloc(ctx, INITIAL_BUCKETS, sizeof *bucket);
    if (!s || !bucket) {
        ember__free(ctx, s);
        ember__free(ctx, bucket);
        return ember__err(msg, EMBER_ENOMEM,
                          "out of memory creating the block store");
    }
    s->ctx = ctx;
    s->dir_lock = -1;
    s->bucket = bucket;
    s->nbucket = INITIAL_BUCKETS;
    omp_init_lock(&s->lock);
    ctx->store = s;
    store_lock(s);
    store_unlock(s); /* publishes the budget and zero counts */
    return EMBER_OK;
}

/* Removes whatever is left in the spill dir, then the dir (its lock let
 * go last: until then no sweeper may take the dir). */
static void remove_dir(ember__store *s)
{
    if (!s->dir[0])
        return;
    remove_tree(s->dir);
    if (s->dir_lock >= 0)
        close(s->dir_lock);
    s->dir_lock = -1;
}

/* Views still held at destroy are the caller's bug; their blocks are freed
 * anyway so that nothing leaks. */
void ember__store_destroy(ember_ctx *ctx)
{
    ember__store *s = ctx->store;
    if (!s)
        return;
    entry *grave = NULL;
    for (size_t b = 0; b < s->nbucket; b++) {
        for (dsrec *d = s->bucket[b], *next; d; d = next) {
            next = d->next;
            for (size_t p = 0; p < d->cap; p++)
                if (d->parts[p])
                    push_job(&grave, d->parts[p]);
            ember__free(ctx, d->parts);
            ember__free(ctx, d);
        }
    }
    for (entry *e = s->limbo.head; e; e = e->next)
        push_job(&grave, e);
    bury(s, grave);
    drop_spares(s, 0);
    remove_dir(s);
    s->used = s->nmem = s->ndisk = s->disk = s->charged = 0;
    store_lock(s);
    store_unlock(s); /* the stats say nothing is stored any more */
    omp_destroy_lock(&s->lock);
    ember__free(ctx, s->bucket);
    ember__free(ctx, s);
    ctx->store = NULL;
}

/* ---- put ------------------------------------------------------------------ */

static int check_put(size_t raw, const void *data, size_t nrec,
                     size_t recsize, ember_level level, char *msg)
{
    if (level < EMBER_MEMORY_ONLY || level > EMBER_MEMORY_AND_DISK_SER ||
        raw == SIZE_MAX || (!data && raw))
        return ember__err(msg, EMBER_EINVAL,
                          "store put: bad level %d or block of %zu x %zu bytes",
                          (int)level, nrec, recsize);
    return EMBER_OK;
}

/* Makes the entry for a put, taking `data` (compressed first for _SER).
 * On failure data is freed. */
static int entry_new(ember_ctx *ctx, entry **out, uint64_t ds_id, size_t part,
                     void *data, size_t nrec, size_t recsize,
                     ember_level level, char *msg)
{
    size_t raw = ember__mul(nrec, recsize), bytes = raw;
    entry *e = NULL;
    void *packed = NULL;
    int rc = check_put(raw, data, nrec, recsize, level, msg);
    if (!rc && !(e = ember__calloc(ctx, 1, sizeof *e)))
        rc = EMBER_ENOMEM;
    if (!rc && is_ser(level))
        rc = ember__compress(ctx, data, raw, recsize, &packed, &bytes);
    if (packed) {
        ember__free(ctx, data);
        data = packed;
    }
    if (rc) {
        ember__free(ctx, data);
        ember__free(ctx, e);
        return rc;
    }
    *e = (entry){.ds_id = ds_id, .part = part, .level = level, .nrec = nrec,
                 .recsize = recsize, .mem = data, .bytes = bytes,
                 .has_mem = true};
    *out = e;
    return EMBER_OK;
}

int ember__store_put(ember_ctx *ctx, uint64_t ds_id, size_t part, void *data,
                     size_t nrec, size_t recsize, ember_level level,
                     char *msg)
{
    ember__msg_clear(msg);
    ember__store *s = ctx->store;
    entry *e = NULL, *grave = NULL, *spills = NULL;
    int rc = entry_new(ctx, &e, ds_id, part, data, nrec, recsize, level, msg);
    if (!rc) {
        store_lock(s);
        rc = place(s, e, &grave, &spills);
        store_unlock(s);
        if (rc)
            push_job(&grave, e);
    }
    if (rc == EMBER_ENOMEM)
        ember__err(msg, rc, "out of memory storing partition %zu of #%llu",
                   part, (unsigned long long)ds_id);
    bury(s, grave);
    int wrc = run_spills(s, spills, msg);
    return rc ? rc : wrc;
}

/* ---- get, release ----------------------------------------------------------- */

/* Decompresses a _SER block's bytes into a new buffer. */
static int unpack(ember__store *s, const entry *e, const void *packed,
                  void **out, char *msg)
{
    size_t raw = e->nrec * e->recsize;
    void *buf = ember__malloc(s->ctx, raw);
    int rc = buf ? ember__decompress(s->ctx, packed, e->bytes, e->recsize,
                                     buf, raw)
                 : EMBER_ENOMEM;
    if (rc == EMBER_ECORRUPT)
        ember__err(msg, rc, "block %zu of #%llu failed to decompress%s",
                   e->part, (unsigned long long)e->ds_id,
                   e->has_mem ? "" : " after reading it back");
    if (rc) {
        ember__free(s->ctx, buf);
        buf = NULL;
    }
    *out = buf;
    return rc;
}

/* Copies a block that is not raw in memory into a new buffer: decompressed
 * from memory, or read back from its spill file. `e` is a snapshot taken
 * under the lock while the entry is pinned. */
static int copy_out(ember__store *s, const entry *e, void **out, char *msg)
{
    if (e->has_mem) /* only _SER blocks: raw ones are handed out as they are */
        return unpack(s, e, e->mem, out, msg);
    void *packed = NULL;
    int rc = read_block(s, e, &packed, msg);
    if (rc || !is_ser(e->level)) {
        *out = packed;
        return rc;
    }
    rc = unpack(s, e, packed, out, msg);
    ember__free(s->ctx, packed);
    return rc;
}

/* Under the lock: finds the block, marks it recently used, pins it and
 * copies its fields to *snap for use without the lock. */
static entry *find_and_pin(ember__store *s, uint64_t ds_id, size_t part,
                           entry *snap)
{
    entry *e = entry_find(s, ds_id, part);
    if (!e)
        return NULL;
    if (e->resident) {
        list_remove(&s->lru, e);
        list_push(&s->lru, e);
    }
    pin(s, e);
    if (e->has_mem && !is_ser(e->level))
        s->delta.cache_hits++; /* handed out as is: nothing left to fail */
    *snap = *e;
    return e;
}

/* Takes the lock to let go of a pin; a get that copied counts here, once
 * the copy worked. */
static void drop_pin(ember__store *s, entry *e, bool hit, bool disk_read)
{
    entry *grave = NULL;
    store_lock(s);
    s->delta.cache_hits += hit;
    s->delta.disk_reads += hit && disk_read;
    unpin(s, e, &grave);
    store_unlock(s);
    bury(s, grave);
}

int ember__store_get(ember_ctx *ctx, uint64_t ds_id, size_t part,
                     ember__view *v, char *msg)
{
    ember__msg_clear(msg);
    memset(v, 0, sizeof *v);
    ember__store *s = ctx->store;
    entry snap;
    store_lock(s);
    entry *e = find_and_pin(s, ds_id, part, &snap);
    store_unlock(s);
    if (!e)
        return EMBER_NOTCACHED;
    if (snap.has_mem && !is_ser(snap.level)) {
        v->data = snap.mem;
        v->n = snap.nrec;
        v->entry_ = e; /* pinned until ember__store_release */
        return EMBER_OK;
    }
    int rc = copy_out(s, &snap, &v->owned_, msg);
    drop_pin(s, e, rc == EMBER_OK, !snap.has_mem);
    if (rc == EMBER_ENOMEM)
        ember__err(msg, rc, "out of memory reading block %zu of #%llu", part,
                   (unsigned long long)ds_id);
    if (!rc) {
        v->data = v->owned_;
        v->n = snap.nrec;
    }
    return rc;
}

void ember__store_release(ember_ctx *ctx, ember__view *v)
{
    if (!v)
        return;
    if (v->entry_)
        drop_pin(ctx->store, v->entry_, false, false);
    ember__free(ctx, v->owned_);
    memset(v, 0, sizeof *v);
}

/* ---- queries, drop ------------------------------------------------------------ */

int ember__store_has(ember_ctx *ctx, uint64_t ds_id, size_t part)
{
    ember__store *s = ctx->store;
    store_lock(s);
    int has = entry_find(s, ds_id, part) != NULL;
    store_unlock(s);
    return has;
}

size_t ember__store_count(ember_ctx *ctx, uint64_t ds_id)
{
    ember__store *s = ctx->store;
    store_lock(s);
    dsrec *d = ds_find(s, ds_id);
    size_t n = d ? d->count : 0;
    store_unlock(s);
    return n;
}

size_t ember__store_records(ember_ctx *ctx, uint64_t ds_id)
{
    ember__store *s = ctx->store;
    store_lock(s);
    dsrec *d = ds_find(s, ds_id);
    size_t n = 0;
    for (size_t p = 0; d && p < d->cap; p++)
        if (d->parts[p])
            n += d->parts[p]->nrec;
    store_unlock(s);
    return n;
}

size_t ember__store_room(ember_ctx *ctx)
{
    ember__store *s = ctx->store;
    size_t budget = ctx->budget;
    if (!s)
        return budget;
    store_lock(s);
    size_t held = s->used + s->charged;
    store_unlock(s);
    return held < budget ? budget - held : 0;
}

void ember__store_drop(ember_ctx *ctx, uint64_t ds_id)
{
    ember__store *s = ctx->store;
    if (!s)
        return;
    entry *grave = NULL;
    store_lock(s);
    dsrec *d = ds_find(s, ds_id);
    if (d) {
        for (size_t p = 0; p < d->cap && d->count; p++)
            if (d->parts[p])
                detach(s, d->parts[p], &grave);
        ds_remove(s, d);
    }
    store_unlock(s);
    bury(s, grave);
}

void ember__store_drop_part(ember_ctx *ctx, uint64_t ds_id, size_t part)
{
    ember__store *s = ctx->store;
    entry *grave = NULL;
    store_lock(s);
    entry *e = entry_find(s, ds_id, part);
    if (e) {
        dsrec *d = e->owner;
        detach(s, e, &grave);
        if (!d->count)
            ds_remove(s, d);
    }
    store_unlock(s);
    bury(s, grave);
}

/* Is the spill file of e there with its size? (Without the lock: e is
 * pinned, and its file number and size do not change.) */
static bool file_there(const ember__store *s, const entry *e)
{
    char path[SPILL_PATH_SIZE];
    struct stat st;
    return stat(spill_path(s, e->file, path), &st) == 0 &&
           (uint64_t)st.st_size == e->bytes;
}

void ember__store_drop_missing(ember_ctx *ctx, uint64_t ds_id)
{
    ember__store *s = ctx->store;
    entry *pinned = NULL, *grave = NULL;
    store_lock(s);
    dsrec *d = ds_find(s, ds_id);
    for (size_t p = 0; d && p < d->cap; p++) {
        entry *e = d->parts[p];
        if (e && e->on_disk && !e->has_mem) {
            pin(s, e);
            push_job(&pinned, e);
        }
    }
    store_unlock(s);
    for (entry *e = pinned, *next; e; e = next) {
        next = e->job;
        bool there = file_there(s, e);
        store_lock(s);
        if (!there && !e->dead) {
            dsrec *owner = e->owner;
            detach(s, e, &grave);
            if (!owner->count)
                ds_remove(s, owner);
        }
        unpin(s, e, &grave);
        store_unlock(s);
    }
    bury(s, grave);
}

/* level for a block held as `has` holds it (raw or serialized): level
 * itself, or its twin of the block's form; EMBER_NONE when there is none
 * (DISK_ONLY for serialized bytes). */
static ember_level level_of_form(ember_level level, ember_level has)
{
    if (is_ser(has) == is_ser(level))
        return level;
    switch (level) {
    case EMBER_MEMORY_ONLY: return EMBER_MEMORY_ONLY_SER;
    case EMBER_MEMORY_AND_DISK: return EMBER_MEMORY_AND_DISK_SER;
    case EMBER_MEMORY_ONLY_SER: return EMBER_MEMORY_ONLY;
    case EMBER_MEMORY_AND_DISK_SER: return EMBER_MEMORY_AND_DISK;
    default: return EMBER_NONE;
    }
}

int ember__store_relevel(ember_ctx *ctx, uint64_t ds_id, ember_level level)
{
    ember__store *s = ctx->store;
    int rc = EMBER_OK;
    store_lock(s);
    dsrec *d = ds_find(s, ds_id);
    /* A block keeps its bytes: one in the other form (a shuffle's output
     * kept raw under a _SER dataset) takes the twin level, which keeps it
     * in the same places (memory, disk), read as it is stored. */
    for (size_t p = 0; d && p < d->cap; p++) {
        entry *e = d->parts[p];
        ember_level to = e ? level_of_form(level, e->level) : EMBER_NONE;
        if (e && to == EMBER_NONE)
            rc = EMBER_EINVAL; /* the bytes would have to change */
        else if (e)
            e->level = to;
    }
    store_unlock(s);
    return rc;
}

/* Evicts least recently used blocks until the charged bytes and the
 * resident ones fit the budget, or nothing evictable is left. */
static void shrink_to_budget(ember__store *s, entry **grave, entry **spills)
{
    size_t budget = s->ctx->budget;
    drop_spares(s, budget_left(s, 0));
    for (entry *e = s->lru.head, *next; e; e = next) {
        next = e->next;
        if (s->charged >= budget ? s->used == 0 : s->used <= budget - s->charged)
            break;
        if (!e->pins)
            evict(s, e, grave, spills);
    }
}

int ember__store_charge(ember_ctx *ctx, size_t bytes, char *msg)
{
    ember__store *s = ctx->store;
    entry *grave = NULL, *spills = NULL;
    store_lock(s);
    s->charged += bytes;
    shrink_to_budget(s, &grave, &spills);
    store_unlock(s);
    bury(s, grave);
    return run_spills(s, spills, msg);
}

void ember__store_release_charge(ember_ctx *ctx, size_t bytes)
{
    ember__store *s = ctx->store;
    if (!s || !bytes)
        return;
    store_lock(s);
    s->charged -= bytes < s->charged ? bytes : s->charged;
    store_unlock(s);
}

/* ---- byte-shuffle + zstd ------------------------------------------------------ */

/* Byte j of every record goes together: the high bytes of integers and the
 * exponents of floats form long runs that zstd compresses well. Bytes past
 * the last whole record stay at the end, unshuffled. */
static void shuffle(unsigned char *out, const unsigned char *in, size_t nbytes,
                    size_t stride)
{
    size_t n = nbytes / stride;
    for (size_t b = 0; b < stride; b++)
        for (size_t i = 0; i < n; i++)
            out[b * n + i] = in[i * stride + b];
    memcpy(out + n * stride, in + n * stride, nbytes - n * stride);
}

static void unshuffle(unsigned char *out, const unsigned char *in,
                      size_t nbytes, size_t stride)
{
    size_t n = nbytes / stride;
    for (size_t b = 0; b < stride; b++)
        for (size_t i = 0; i < n; i++)
            out[i * stride + b] = in[b * n + i];
    memcpy(out + n * stride, in + n * stride, nbytes - n * stride);
}

int ember__compress(ember_ctx *ctx, const void *src, size_t nbytes,
                    size_t stride, void **dst, size_t *dst_bytes)
{
    *dst = NULL;
    *dst_bytes = 0;
    unsigned char *tmp = NULL;
    const void *in = src;
    if (stride > 1) {
        if (!(tmp = ember__malloc(ctx, nbytes)))
            return EMBER_ENOMEM;
        shuffle(tmp, src, nbytes, stride);
        in = tmp;
    }
    size_t cap = ZSTD_compressBound(nbytes);
    void *out = cap ? ember__malloc(ctx, cap) : NULL;
    size_t n = out ? ZSTD_compress(out, cap, in, nbytes, 1) : 0;
    ember__free(ctx, tmp);
    if (!out || ZSTD_isError(n)) {
        ember__free(ctx, out);
        return EMBER_ENOMEM; /* zstd fails only when it cannot allocate */
    }
    void *fit = ember__realloc(ctx, out, n); /* give back the bound's slack */
    *dst = fit ? fit : out;
    *dst_bytes = n;
    return EMBER_OK;
}

int ember__decompress(ember_ctx *ctx, const void *src, size_t src_bytes,
                      size_t stride, void *dst, size_t nbytes)
{
    unsigned char *tmp = NULL;
    if (stride > 1 && !(tmp = ember__malloc(ctx, nbytes)))
        return EMBER_ENOMEM;
    void *out = tmp ? (void *)tmp : dst;
    size_t n = ZSTD_decompress(out, nbytes, src, src_bytes);
    int rc = EMBER_OK;
    if (ZSTD_isError(n) || n != nbytes)
        rc = ZSTD_getErrorCode(n) == ZSTD_error_memory_allocation
                 ? EMBER_ENOMEM
                 : EMBER_ECORRUPT;
    else if (tmp)
        unshuffle(dst, tmp, nbytes, stride);
    ember__free(ctx, tmp);
    return rc;
}
