/* fuzz.h: what ember's fuzz harnesses share (tests/fuzz/fuzz_*.c).
 *
 * Each harness defines LLVMFuzzerTestOneInput, the libFuzzer entry point.
 * It is linked either with libFuzzer (clang, `make fuzz`, build-fuzz/) or
 * with replay.c, a plain main that runs every file of a corpus once (the
 * ctest tests fuzz.<harness> of the normal build). Harnesses never stop on
 * bad input: a rejected input is a pass. They abort on what must never
 * happen, so that both drivers report it:
 *   - an HDF5 identifier still open after the input (fuzz_check_h5);
 *   - an error status with an empty message, or a message that is not one
 *     line (fuzz_check_msg).
 * Sanitizers (ASan, UBSan) report the rest.
 *
 * The APIs take paths, so an input is written to a file in a private
 * directory made once per process (fuzz_path); a process runs one input at
 * a time. Contexts use one thread (determinism makes the thread count
 * irrelevant to what is parsed, and libFuzzer wants a single thread) and an
 * allocator that refuses any single allocation above FUZZ_ALLOC_LIMIT, as a
 * machine with little memory would: a claimed size in a damaged file must
 * give EMBER_ENOMEM or a format error, not an attempt.
 */
#ifndef EMBER_FUZZ_H
#define EMBER_FUZZ_H

#include <ember.h>

#include <stddef.h>
#include <stdint.h>

#define FUZZ_ALLOC_LIMIT ((size_t)256 << 20)
/* Graphs: a 12-byte edge list "20000000 7" is a valid graph of 20 million
 * vertices, seconds of work under the sanitizers and coverage tracing; the
 * harnesses pass this vertex limit (or a smaller one) so that legitimately
 * big graphs are not reported as hangs. The limit's own errors stay
 * reachable. */
#define FUZZ_MAX_VERTICES ((uint64_t)1 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The private directory of this process (created on first use). */
const char *fuzz_dir(void);
/* Writes bytes to <fuzz_dir>/<name> (replacing it) and returns that path in
 * a static buffer; aborts when the file cannot be written. */
const char *fuzz_write(const char *name, const void *data, size_t size);
/* A path under fuzz_dir (static buffer, reused by the next call). */
const char *fuzz_path(const char *name);
/* Removes <fuzz_dir>/<name> and everything under it. */
void fuzz_remove(const char *name);

/* A one-thread context with the capped allocator; aborts on failure. */
ember_ctx *fuzz_ctx(void);

/* Aborts unless rc is EMBER_OK or msg is a non-empty single line. With
 * EMBER_FUZZ_VERBOSE set in the environment, prints each call's status and
 * message to stderr (to see what an input does). */
void fuzz_check_msg(int rc, const char *msg, const char *call);
/* Puts back the default action of SIGALRM, SIGINT, SIGTERM and SIGUSR1.
 * A harness linked with the programs' library (ember_cli) inherits its
 * constructor (cli.c, early_at_start), which catches those from the
 * start to exit 75; libFuzzer keeps a handler it finds in place, so its
 * -timeout (SIGALRM) would end a hanging input with exit 75 and no
 * artifact, and so would replay.c's alarm. Called by LLVMFuzzerInitialize
 * (fuzz.c) and by replay.c's main, before any input. */
void fuzz_signals_default(void);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Says what must never happen ("fuzz: what: detail", detail may be NULL)
 * and aborts, which both drivers report. */
void fuzz_fail(const char *what, const char *detail) __attribute__((noreturn));

/* Aborts when any HDF5 identifier (file, group, dataset, datatype,
 * attribute) is open. Call after everything of the input was freed. */
void fuzz_check_h5(void);

#endif /* EMBER_FUZZ_H */
