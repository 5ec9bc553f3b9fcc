#!/usr/bin/env bash
# Shortest paths (issue 8): ember-sssp, written only in the dataset idiom,
# against a hand-written C frontier Bellman-Ford (bench/sssp_baseline.c:
# the same rounds, plain arrays, OpenMP, atomic minimums), all measured in
# this run. Kronecker scale SCALE (default 18), edge factor 16, integer
# weights 1..255 (ember-gen kron --weighted), undirected, from the first
# edge's source; 2 threads. Runs are interleaved (A B C A B C ...) so load
# from other processes hits every contender alike; medians of RUNS runs,
# compute only (loading excluded). Reports:
#   - seconds of the baseline, ember-sssp (pull plan: broadcast + map, the
#     default), ember-sssp --plan shuffle (flat_map + reduce_by_key), and
#     ember-sssp with a checkpoint every 4 rounds; the ratios to the
#     baseline (the goal: pull <= 2x);
#   - where the rest goes: the edges each scans (the pull plan reads every
#     edge every round, the baseline only the frontier's), the time per
#     scanned edge of each, and what the checkpoints cost;
#   - that every contender's distances are the same (cmp of the CSVs).
# Benchmarks are never ctest assertions: this prints, it does not judge.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${EMBER_BUILD:-$here/../build}
bin=${EMBER_BIN:-$build/bin}
SCALE=${SCALE:-18} EF=${EF:-16} RUNS=${RUNS:-5}
THREADS=${THREADS:-2}
export OMP_NUM_THREADS=$THREADS
work=${BENCH_DIR:-$(mktemp -d)}
[ -n "${BENCH_DIR:-}" ] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"

gcc -O3 ${BENCH_CFLAGS:-} -fopenmp -I"$here/../include" "$here/sssp_baseline.c" -L"$build/lib" -lember \
    -Wl,-rpath,"$build/lib" -lm -o "$work/baseline"

graph=$work/wkron$SCALE.el
[ -f "$graph" ] || "$bin/ember-gen" kron --scale "$SCALE" --edge-factor "$EF" --seed 1 \
    --weighted --output "$graph" --quiet
src=$(awk '!/^#/ { print $1; exit }' "$graph")

median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
compute() { sed -n 's/.*"compute_seconds": \([0-9.e-]*\).*/\1/p' "$1"; }
ckpt() { sed -n 's/.*"checkpoint_write_seconds": \([0-9.e-]*\).*/\1/p' "$1"; }

load=$(cut -d' ' -f1-3 /proc/loadavg)
common=(--input "$graph" --undirected --source "$src" --threads "$THREADS" --quiet)
: > "$work/base" ; : > "$work/pull" ; : > "$work/shuffle" ; : > "$work/ck" ; : > "$work/ckw"
for i in $(seq "$RUNS"); do
    "$work/baseline" "$graph" "$src" undirected "$work/base.csv" > "$work/base.txt"
    awk '/kernel_seconds/ { print $2 }' "$work/base.txt" >> "$work/base"
    "$bin/ember-sssp" "${common[@]}" --output "$work/pull.csv" --metrics "$work/m.jsonl"
    compute "$work/m.jsonl" >> "$work/pull"
    "$bin/ember-sssp" "${common[@]}" --plan shuffle --output "$work/shuffle.csv" \
        --metrics "$work/m.jsonl"
    compute "$work/m.jsonl" >> "$work/shuffle"
    rm -rf "$work/ck.d"
    "$bin/ember-sssp" "${common[@]}" --output "$work/ck.csv" --metrics "$work/m.jsonl" \
        --checkpoint-dir "$work/ck.d" --checkpoint-every 4
    compute "$work/m.jsonl" >> "$work/ck"
    ckpt "$work/m.jsonl" >> "$work/ckw"
done
same=yes
for c in pull shuffle ck; do
    cmp -s "$work/base.csv" "$work/$c.csv" || same="NO ($c differs)"
done
read -r rounds reached relaxed m < <(awk '/^rounds/ { r = $2 } /^reached/ { h = $2 }
    /^relaxed/ { x = $2 } /^edges/ { m = $2 } END { print r, h, x, m }' "$work/base.txt")
base=$(median < "$work/base") pull=$(median < "$work/pull")
shuffle=$(median < "$work/shuffle") ck=$(median < "$work/ck") ckw=$(median < "$work/ckw")
echo "load average at the start: $load"
echo "SSSP, Kronecker scale $SCALE edge factor $EF, weights 1..255, undirected ($m edges stored),"
echo "source $src: $reached vertices reached in $rounds rounds; $THREADS threads, medians of"
echo "$RUNS interleaved runs (compute only):"
awk -v b="$base" -v p="$pull" -v s="$shuffle" -v c="$ck" -v w="$ckw" 'BEGIN {
    printf "  frontier Bellman-Ford, plain C (baseline)  %8.3f s\n", b
    printf "  ember-sssp (pull: broadcast + map)         %8.3f s   %.2f x baseline\n", p, p / b
    printf "  ember-sssp --plan shuffle (reduce_by_key)  %8.3f s   %.2f x baseline\n", s, s / b
    printf "  ember-sssp, a checkpoint every 4 rounds    %8.3f s   %.2f x baseline (+ %.3f s writing)\n", c, c / b, w
}'
awk -v t="$THREADS" -v b="$base" -v p="$pull" -v r="$rounds" -v x="$relaxed" -v m="$m" 'BEGIN {
    printf "Where the time goes: the pull plan scans every edge every round, %d x %d = %.1f M\n", r, m, r * m / 1e6
    printf "edge reads, %.2f x the %.1f M edges the frontier baseline relaxes: %.1f ns a scanned edge\n", r * m / x, x / 1e6, p * 1e9 / (r * m)
    printf "for ember against %.1f ns a relaxed edge for the baseline (wall clock, %d threads).\n", b * 1e9 / x, t
}'
echo "Distances identical (cmp) across all four: $same"
