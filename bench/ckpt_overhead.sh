#!/usr/bin/env bash
# Checkpoint overhead on the iterations (issue 11, section 3): ember-pagerank
# on a Kronecker graph (SCALE, default 20), ITERS (default 40) iterations,
# a checkpoint every 5, synchronous and asynchronous, against no
# checkpoints, runs interleaved. The figure is (compute + checkpoint) /
# compute: each run's wall time less its graph load (the summary's "load"),
# median of RUNS, as a ratio to the no-checkpoint run's. Goal <= 1.02.
# Printed, never asserted: these machines are shared and noisy.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${EMBER_BUILD:-$here/../build}
bin=${EMBER_BIN:-$build/bin}
RUNS=${RUNS:-5} SCALE=${SCALE:-20} ITERS=${ITERS:-40}
export OMP_NUM_THREADS=${THREADS:-2}
work=$(mktemp -d "${BENCH_DIR:-/tmp}/ember-ckover.XXXXXX")
trap 'rm -rf "$work"' EXIT
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

"$bin/ember-gen" kron --scale "$SCALE" --edge-factor 16 --seed 1 --output "$work/g.h5" --quiet
# One run: prints its wall time less its load time.
run() {
    local out=$1; shift
    rm -rf "$work/ck"
    local t0 t1 load
    t0=$(date +%s%N)
    "$bin/ember-pagerank" --input "$work/g.h5" --iterations "$ITERS" --tolerance 0 \
        --output "$work/$out.h5" "$@" > /dev/null 2> "$work/log"
    t1=$(date +%s%N)
    load=$(sed -n 's/.*load \([0-9.]*\) s.*/\1/p' "$work/log")
    # the loop's own figures: compute and checkpoint seconds (summary line)
    sed -n 's/.*compute \([0-9.]*\) s, checkpoints \([0-9.]*\) s.*/\1 \2/p' "$work/log" >> "$work/$out.own"
    awk -v a="$t0" -v b="$t1" -v l="$load" 'BEGIN { printf "%.6f\n", (b - a) / 1e9 - l }'
}
: > "$work/plain"; : > "$work/sync"; : > "$work/async"
: > "$work/sync.own"; : > "$work/async.own"; : > "$work/plain.own"
loads=""
for _ in $(seq "$RUNS"); do
    run plain >> "$work/plain"
    run sync --checkpoint-dir "$work/ck" --checkpoint-every 5 >> "$work/sync"
    run async --checkpoint-dir "$work/ck" --checkpoint-every 5 --checkpoint-async >> "$work/async"
    loads="$loads $(cut -d' ' -f1 /proc/loadavg)"
done
for m in sync async; do
    cmp -s <(h5dump -d /ranks "$work/plain.h5" | tail -n +3) \
           <(h5dump -d /ranks "$work/$m.h5" | tail -n +3) \
        || { echo "ranks with $m checkpoints differ" >&2; exit 1; }
done
# Steadier under load than wall differences between runs: within each sync
# run, 1 + (its checkpoint seconds) / (its compute seconds).
own=$(awk '{ printf "%.4f\n", 1 + $2 / $1 }' "$work/sync.own" | median)
p=$(median < "$work/plain"); s=$(median < "$work/sync"); a=$(median < "$work/async")
pm=$(sort -g "$work/plain" | head -1); sm=$(sort -g "$work/sync" | head -1); am=$(sort -g "$work/async" | head -1)
echo "pagerank scale $SCALE, $ITERS iterations, checkpoint every 5, threads $OMP_NUM_THREADS, median of $RUNS (1-min load averages:$loads)"
echo "  runs (s, wall less load): plain $(paste -sd' ' "$work/plain")"
echo "                            sync  $(paste -sd' ' "$work/sync")"
echo "                            async $(paste -sd' ' "$work/async")"
awk -v p="$p" -v s="$s" -v a="$a" -v pm="$pm" -v sm="$sm" -v am="$am" \
    -v own="$own" -v sc="$SCALE" -v sum="${BENCH_SUMMARY:-}" 'BEGIN {
    printf "  no checkpoints %.3f s (fastest %.3f s)\n", p, pm
    printf "  synchronous  %.3f s   (compute + checkpoint) / compute %.3f (fastest runs: %.3f)\n", s, s / p, sm / pm
    printf "  asynchronous %.3f s   (compute + checkpoint) / compute %.3f (fastest runs: %.3f)\n", a, a / p, am / pm
    printf "  synchronous, within each run: 1 + checkpoint seconds / compute seconds %.4f (median)\n", own
    if (sum != "")
        printf "PageRank s%d, a checkpoint every 5: (compute + ckpt) / compute | %.3f | <= 1.02\n", sc, s / p >> sum }'
