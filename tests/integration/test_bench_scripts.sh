#!/usr/bin/env bash
# The benchmarks that need no peer (no GAPBS, scikit-learn, numpy or MPI)
# run to the end at toy sizes and print their figures. No figure is judged
# (timings are never asserted); this keeps the scripts from rotting when a
# program's output changes: bench/pagerank.sh once read its graph's size
# from stderr after the result line had moved to stdout, and
# bench/stream_bench.sh compared ember's CSV with a baseline written
# without the header line ember-stream-wordcount had gained; both failed
# `make bench` and no test said so.
set -euo pipefail
src=${EMBER_SRC:?}
export EMBER_BUILD=${EMBER_BUILD:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export BENCH_DIR=$work TMPDIR=$work
fail() { echo "FAIL: $*" >&2; exit 1; }
# A sanitizer build's libember loads only into programs built with the
# sanitizers; the scripts' own C programs are not under test, so their
# leaks are not reported.
if grep -q '^EMBER_SANITIZE:BOOL=ON' "$EMBER_BUILD/CMakeCache.txt" 2> /dev/null; then
    export BENCH_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer"
    export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
fi

# bench NAME PATTERN [VAR=VALUE...]: bench/NAME.sh with the variables set
# exits 0 and prints a line matching PATTERN
bench() {
    local name=$1 pattern=$2
    shift 2
    env "$@" RUNS=1 bash "$src/bench/$name.sh" > "$work/$name.out" 2>&1 ||
        fail "bench/$name.sh failed: $(tail -5 "$work/$name.out")"
    grep -Eq "$pattern" "$work/$name.out" ||
        fail "bench/$name.sh printed no line matching '$pattern': $(tail -5 "$work/$name.out")"
}

bench pagerank 'ember-pagerank +[0-9.]+ s +[0-9.]+ x plain' SCALE=10 NX_SCALE=8
bench stream_bench 'ember complete +10 files/batch' NFILES=40 FILE_BYTES=2000 VOCAB=500 \
    BATCH_FILES=10 EMPTY=3
bench sssp 'Distances identical \(cmp\) across all four: yes' SCALE=10
bench jacobi 'idiom / arrays [0-9.]+ x with checkpoints' SCALE=10 ITERS=20
bench spark_pagerank 'idiom RSS [0-9]+ / [0-9]+ iterations [0-9.]+x' SCALE=10 ITERS=20
bench spark_kmeans 'idiom / ember-kmeans [0-9.]+x an iteration' N=5000 ITERS=10
bench spark_lr 'idiom / plain [0-9.]+x an iteration' N=5000 ITERS=10 NUMPY=no
bench ckpt_overhead 'ratio to no checkpoints: --checkpoint-sync [0-9.]+, default [0-9.]+' \
    SCALE=12 ITERS=10
bench checkpoint 'checkpoint every 5, asynchronous' BYTES=4194304 SCALE=12
bench filesum 'verify / read [0-9.]+x' SCALE=12
