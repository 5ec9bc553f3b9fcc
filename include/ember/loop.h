/* ember/loop.h: dataset checkpoints and the resumable iteration loop.
 * Included by ember.h; not meant to be included alone.
 *
 * Checkpoint files are HDF5, one file per checkpoint, written as NAME.tmp,
 * flushed, closed, fsync'd, renamed into place and the directory fsync'd:
 * a reader never sees half a file. On one process the loop writes them in
 * the background by default (ember_loop_opts.async, .sync). Data carries
 * Fletcher32 checksums and a file that fails verification is skipped for
 * the previous good one. The layout is specified in
 * docs/checkpoint-format.md. HDF5's own file locking is turned off for
 * these files (it fails on NFS and Lustre); the loop instead holds an
 * fcntl lock on its directory.
 */
#ifndef EMBER_LOOP_H
#define EMBER_LOOP_H

#ifdef __cplusplus
extern "C" {
#endif

/* Version of the checkpoint file layout this library writes. */
#define EMBER_CHECKPOINT_FORMAT 2
/* ... and it reads files of formats 1 to EMBER_CHECKPOINT_FORMAT. */

/* The exit status of a program that checkpointed for a signal or a
 * deadline and can be resumed (EX_TEMPFAIL): a batch script requeues. */
#define EMBER_EXIT_RESUMABLE 75

/* The longest checkpoint directory name a loop takes, in bytes (room is
 * kept for the names of the files in it). */
#define EMBER_LOOP_DIR_MAX 960

/* ---- dataset checkpoints ------------------------------------------------ */

/* Marks ds (lazy, like Spark's checkpoint()): the next action that computes
 * all of ds writes it to "<checkpoint dir>/ds-<token>-<id>-<name>.h5"
 * (the directory made if missing; the token, 16 random hex digits, is the
 * context's, so contexts and processes sharing the directory never meet)
 * while computing it, once, and from then on ds's lineage is a read of
 * that file, which must still be the file written (another one under the
 * name is EMBER_ECORRUPT). The file stays after ds and the context are
 * freed, as in Spark.
 * A persisted ds whose partitions are stored is written from the store,
 * never computed again. Once written, ds lets go of its lineage (parents,
 * broadcasts it uses, its shuffle outputs): see "Lineage" in ember.h. */
int ember_checkpoint(ember_ds *ds, char *msg);
/* Writes ds now (runs a job) and truncates its lineage. Both return
 * EMBER_OK for a ds already marked or written, and EMBER_ESTATE for one
 * already checkpointed locally (ember_local_checkpoint, or a loop's
 * checkpoint of a bound dataset): its lineage is gone, so no file can be
 * made from it; ask for the file first. */
int ember_checkpoint_eager(ember_ds *ds, char *msg);
/* Truncates ds's lineage into the block store, with no file (a ds marked
 * by ember_checkpoint is written to its file now instead, which does both): its
 * partitions are kept at a level that spills rather than vanishes.
 * Partitions already stored stay as they are, moved to that level
 * (MEMORY_ONLY -> MEMORY_AND_DISK, MEMORY_ONLY_SER -> MEMORY_AND_DISK_SER;
 * other levels are kept); only the missing ones are computed now.
 * ember_unpersist frees them, and the dataset with them. */
int ember_local_checkpoint(ember_ds *ds, char *msg);
/* 1 when ds's lineage has been replaced by a checkpoint (file or local). */
int ember_is_checkpointed(const ember_ds *ds);
/* The checkpoint file of ds, or NULL (not written, or local). */
const char *ember_checkpoint_path(const ember_ds *ds);
/* Opens a dataset from a checkpoint file, in any process. name NULL picks
 * the only dataset in the file. Verifies checksums as it reads. */
int ember_read_checkpoint(ember_ds **out, ember_ctx *ctx, const char *path,
                          const char *name, char *msg);

/* ---- the loop ------------------------------------------------------------- */

typedef struct ember_loop ember_loop;

typedef enum {
    EMBER_RESUME_AUTO = 0,    /* newest good checkpoint, else start fresh;
                                 but a directory whose only files are
                                 another build's (the first of ember
                                 0.1.0, with no checksum header: never
                                 retired) is refused, EMBER_EMISMATCH */
    EMBER_RESUME_NEVER = 1,   /* start fresh; the run owns the directory:
                                 the files of older runs stay until this
                                 run's first checkpoint commits, then they
                                 are all deleted, whatever keep says */
    EMBER_RESUME_REQUIRE = 2  /* a good checkpoint must exist (a directory
                                 that does not is refused at create,
                                 EMBER_ENOTFOUND, and not made) */
} ember_resume;

typedef struct {
    const char *dir;          /* checkpoint directory, made with its parents
                                 (mode 0777 less the umask) if missing; at
                                 most EMBER_LOOP_DIR_MAX bytes;
                                 NULL: the context's. NULL there too: the
                                 loop never checkpoints */
    const char *program;      /* recorded and checked on resume */
    const char *parameters;   /* "name=value" lines (a line of another
                                 form is EMBER_EINVAL); recorded and checked,
                                 except lines "info.<name>=value": those
                                 are recorded only (an input's path, while
                                 its size and hash are checked) */
    uint64_t every;           /* checkpoint every N iterations (0: off) */
    double seconds;           /* ... every T seconds (0: off) */
    size_t max_depth;         /* ... when a bound dataset's lineage depth
                                 reaches D, counting what the loop's own
                                 cuts took off since the last checkpoint
                                 (a cached state is cut every iteration):
                                 about every D steps of a chain (0: off).
                                 A state that reaches the next only through
                                 a broadcast (y = map(idx, broadcast(x)))
                                 has no chain: bound it with every or
                                 seconds */
    double mtbf;              /* auto: every sqrt(2 C MTBF) seconds, C the
                                 measured checkpoint cost (0: off) */
    int keep;                 /* checkpoints kept (0: 2) */
    ember_resume resume;
    int force_resume;         /* resume although program or parameters
                                 differ, as long as the state types match */
    double deadline;          /* wall-clock time (seconds since the epoch)
                                 by which the run must have stopped (0: none) */
    int no_signals;           /* do not catch SIGTERM, SIGINT and SIGUSR1 */
    int deflate;              /* 0: none, 1..9: shuffle + deflate */
    int async;                /* policy checkpoints are snapshots written
                                 by a background thread while the next
                                 iterations run (memory: one copy of the
                                 state and one of the file, checked
                                 against the context's memory budget;
                                 a checkpoint they do not fit, or that
                                 cannot allocate them, is streamed as with
                                 sync); finish, signals and deadlines
                                 still write before returning (but see
                                 ember_loop_finish_start), in the
                                 file's memory once a policy checkpoint
                                 made it, else streamed. The default on
                                 one process; refused on several MPI
                                 ranks */
    int sync;                 /* every checkpoint written on the calling
                                 thread, streamed to the file (no copy in
                                 memory); the default on several ranks.
                                 Not with async */
    int quiet;                /* no progress lines on stderr ("resumed
                                 from ..."); warnings (a skipped file, a
                                 failed deletion) are always printed, and
                                 also go to the message of ember_loop_next */
    uint64_t iterations;      /* the iterations this run asks for (0: not
                                 said): the first ember_loop_next refuses a
                                 checkpoint past them (EMBER_EMISMATCH,
                                 naming both counts), whose state is a
                                 longer run's, before it touches the bound
                                 state, and ember_loop_finish does
                                 not count an iteration handed out at or
                                 past them (see there). Not recorded or
                                 compared: a larger count goes on from a
                                 checkpoint */
} ember_loop_opts;

typedef struct {
    uint64_t checkpoints;      /* written by this process */
    uint64_t last_bytes;       /* size of the last file written */
    uint64_t total_bytes;
    double checkpoint_seconds; /* total time spent writing: each committed
                                  file from its start (the snapshot, in
                                  the background mode) to its commit */
    double last_seconds;
    uint64_t restored_from;    /* iteration restored (when restored) */
    int restored;              /* 1 when state came from a checkpoint */
    int last_was_checkpoint;   /* the last ember_loop_next took one: wrote
                                  it, or in the background started it (it
                                  commits later: checkpoints and
                                  last_iteration count it then); not set by
                                  ember_loop_finish; ember_loop_finish_start
                                  sets it when the final one is in flight,
                                  else 0 */
    char last_path[1024];      /* the last file written, or until one is
                                  the file restored from */
    uint64_t last_iteration;   /* iterations done that the last file
                                  written (committed) holds; 0: none */
    double caller_seconds;     /* time the calling thread spent on
                                  checkpoints (what the iterations lost):
                                  synchronous writes, snapshots, waits for
                                  the background writer, retention. With
                                  sync, at least checkpoint_seconds */
} ember_loop_stats;

/* Creates a loop: locks the directory (EMBER_EBUSY naming the holder's pid
 * when another live process has it; a dead holder's lock is free), sweeps
 * the stray temporaries of ember's crashed writes ("ckpt-*.tmp", "ds-*.tmp":
 * no other file), and installs the signal handlers. */
int ember_loop_create(ember_loop **out, ember_ctx *ctx,
                      const ember_loop_opts *opts, char *msg);
/* Releases the lock and restores signal handlers. Accepts NULL. */
void ember_loop_destroy(ember_loop **loop);

/* State bound under names. The loop reads the bound variables when it
 * checkpoints and writes them when it restores, so they must stay valid for
 * the loop's life. A bound dataset handle is replaced on restore (the old
 * handle is freed), so build nothing from a bound dataset before the first
 * ember_loop_next: a dataset or broadcast derived from it earlier keeps the
 * data from before the restore. When checkpointed, its lineage is truncated (a
 * local checkpoint: cached blocks are kept, not computed again) and the
 * file written from its stored blocks. Names: letters, digits, '_', '-'
 * and '.', at most 31 bytes, not starting with '.' or '-', each once. A
 * refused binding returns EMBER_EINVAL (EMBER_ESTATE once the first
 * ember_loop_next has run) and, as these calls take no msg, says on stderr
 * which name and why. */
int ember_loop_bind_ds(ember_loop *loop, const char *name, ember_ds **ds);
int ember_loop_bind_i64(ember_loop *loop, const char *name, int64_t *v);
int ember_loop_bind_f64(ember_loop *loop, const char *name, double *v);
/* A caller array of n scalars of one kind (n fixed for the run). */
int ember_loop_bind_array(ember_loop *loop, const char *name,
                          ember_scalar kind, void *data, size_t n);
/* A caller array of rows x cols scalars (k x d centroids), stored as a
 * rows x cols dataset so that a reader sees the matrix. */
int ember_loop_bind_matrix(ember_loop *loop, const char *name,
                           ember_scalar kind, void *data, size_t rows,
                           size_t cols);
/* An array written with every checkpoint, under /scalars/<name>, for the
 * people and programs reading it (the vertex id of each position of a
 * bound dataset, say), never restored and not part of the state checked
 * on resume. data (n scalars of kind, borrowed) must stay valid and
 * unchanged for the loop's life. */
int ember_loop_note_array(ember_loop *loop, const char *name,
                          ember_scalar kind, const void *data, size_t n);
/* The bound item `name` was called v1_name in format 1 checkpoints (state
 * renamed since): restoring such a file reads and checks it under that
 * name. v1_name NULL: the item is newer than format 1, and restoring a
 * format 1 file sets it to zeros. Call after binding it, before the first
 * ember_loop_next. EMBER_ENOTFOUND when nothing is bound as name. */
int ember_loop_format1_name(ember_loop *loop, const char *name,
                            const char *v1_name);
/* Opaque bytes (RNG state, counters). */
int ember_loop_bind_blob(ember_loop *loop, const char *name, void *data,
                         size_t size);

/* Call at the top of every iteration. The first call restores the newest
 * checkpoint that verifies (a bad one is skipped with a warning naming it)
 * and sets *iteration to the number of iterations already done. Later calls
 * count the previous iteration as done, checkpoint when the policy says so,
 * and then:
 *   EMBER_OK           run iteration *iteration;
 *   EMBER_INTERRUPTED  a signal arrived or the deadline is near: a
 *                      checkpoint was written; exit EMBER_EXIT_RESUMABLE;
 *   < 0                an error (message in msg).
 * A fingerprint mismatch on restore is EMBER_EMISMATCH, the message listing
 * what differs. The loop cannot tell an iteration that failed from one that
 * ran: next counts it as done all the same (and may checkpoint the bound
 * state as it stands, one iteration on). So an iteration whose work failed
 * ends the loop (break, as below); one that is tried again calls its step
 * again within the same iteration, not next. */
int ember_loop_next(ember_loop *loop, uint64_t *iteration, char *msg);
/* Counts the last iteration handed out as done and writes a final
 * checkpoint (when the loop has a directory), so a finished run restarted
 * does no work again. Call it right after running the last iteration:
 *
 *     for (rc = ember_loop_next(loop, &it, msg);
 *          rc == EMBER_OK && it < n && !converged;
 *          rc = ember_loop_next(loop, &it, msg)) {
 *         step(it);              (sets converged)
 *         if (it + 1 == n || converged) {
 *             rc = ember_loop_finish(loop, msg);
 *             break;
 *         }
 *     }
 *
 * Call it inside the loop, as above: after the loop has ended, the
 * iteration the last ember_loop_next handed out did not run, and finish
 * cannot tell. The one exception: an iteration handed out at or past
 * opts.iterations is not counted, so with .iterations = n a finish after
 * a loop that ended because `it` reached n records n. A loop that ended
 * otherwise (on a flag, a break) and then calls finish records one
 * iteration too many. A loop that can stop before n binds its stop
 * condition (converged above, an int64_t, with ember_loop_bind_i64) and
 * tests it in the for: restored from the final checkpoint, the run then
 * stops where it stopped, instead of running one more iteration (the
 * programs' --tolerance runs do this). */
int ember_loop_finish(ember_loop *loop, char *msg);
/* ember_loop_finish, except that in the background mode (opts.async, one
 * process) the final checkpoint is written in the background: it returns
 * once the snapshot is taken (stats.last_was_checkpoint then 1), so that
 * the program can write its outputs meanwhile. The checkpoint has
 * committed, or its failure is known, when ember_loop_wait returns;
 * ember_loop_destroy waits too, but can only print a failure. Noted arrays
 * must stay unchanged until then. The loop has stopped either way: a
 * failed final write is not tried again (ember_loop_finish returns
 * EMBER_ESTATE). In the other modes, and when the snapshot and the file
 * image do not fit the memory budget, it is ember_loop_finish. */
int ember_loop_finish_start(ember_loop *loop, char *msg);
/* Waits for the checkpoint being written in the background, if any, and
 * returns its outcome (EMBER_OK when none is in flight); the stats count
 * it once committed. */
int ember_loop_wait(ember_loop *loop, char *msg);
/* Catches SIGTERM, SIGINT and SIGUSR1 from now on, before any loop
 * exists: a signal that comes while the program still hashes or loads its
 * inputs is held, and the next loop created (or stream) takes it as its
 * own: the loop stops at its first chance, as for a signal during its
 * first iteration (that iteration done, a checkpoint, EMBER_INTERRUPTED:
 * exit EMBER_EXIT_RESUMABLE) instead of the process dying of the signal.
 * Call it first thing in main. A signal ignored now stays ignored; a
 * second one of a kind takes its default action. */
int ember_loop_catch_early(char *msg);

/* Writes a checkpoint now, of the iterations done so far: call it where
 * ember_loop_next returned, before the iteration's step changes the bound
 * state. The file says *iteration (of that ember_loop_next) iterations
 * done; taken after the step it would hold one more, and a resume would
 * run that iteration twice. A bound dataset replaced since ember_loop_next
 * returned shows it, and is refused (EMBER_ESTATE); other bound state
 * cannot be told apart. */
int ember_loop_checkpoint(ember_loop *loop, char *msg);
void ember_loop_get_stats(const ember_loop *loop, ember_loop_stats *out);
/* After the first ember_loop_next: 1 when it resumed by force_resume from a
 * checkpoint of another program, other parameters or other input; 2 when
 * the file it resumed from carries on such a run (the forcing is recorded
 * in every later checkpoint's parameters as "info.forced=", and said
 * again at each resume); 3 when that file was written by ember 0.1.0,
 * which does not say whether its run was forced (its builds before
 * 2026-12-06 20:11 recorded no forcing), recorded and said alike
 * ("unknown: ..."); 0 otherwise. note (if not NULL) gets what
 * differed, where and from what. Either way the state may not be that of a
 * run started with these parameters, and a stop flag restored with it
 * may have been decided under others. */
int ember_loop_forced(const ember_loop *loop, char *note, size_t size);
/* 1 when a termination signal has been caught by this loop. */
int ember_loop_signalled(const ember_loop *loop);

#ifdef __cplusplus
}
#endif

#endif /* EMBER_LOOP_H */
