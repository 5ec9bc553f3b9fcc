#!/usr/bin/env bash
# The MPI layer's overhead over shared memory (issue 12), all measured in
# this run: ember-pagerank on a Kronecker graph of scale SCALE (default
# 20, edge factor 16), ITERS iterations (default 20), tolerance 0, PARTS
# partitions (default 16), as
#   shared   1 rank  x 2 threads  (the MPI build, mpirun -n 1): the baseline
#   mpi      2 ranks x 1 thread   (mpirun -n 2; the contribution vector is
#            one shared-memory window, its all-gather a barrier)
#   mpi-ag   2 ranks x 1 thread with EMBER_MPI_SHARED=0 (each rank its own
#            contribution vector, all-gathered through Open MPI: what ranks
#            on different nodes do)
# compute seconds (iterations only, from the metrics file, loading
# excluded); medians of RUNS runs (default 5), interleaved (shared, mpi,
# mpi-ag, shared, ...). Prints each one's ratio to the baseline (the goal:
# mpi <= 1.3x on this 2-core machine), then one more run of each with
# EMBER_PHASES=1: every rank's milliseconds per iteration in each phase
# of an iteration (docs/mpi.md "Where the time goes").
#
# Bytes moved per iteration: counted by Open MPI itself (the pml
# monitoring component: every byte a rank sends, collectives included),
# for runs of ITERS and 2 x ITERS iterations; the difference divided by
# ITERS is what one iteration moves, loading and output excluded. Printed
# next to docs/mpi.md's formula B(P) = 8 n (P - 1) + 16 k (P - 1) + 8 F P
# ceil(log2 P), n vertices, k partitions, F = 5 agreements of 8 bytes
# (the loop's flags, two per action's status, two actions), for the
# all-gather (EMBER_MPI_SHARED=0); the shared window moves B(P) - 8 n
# (P - 1), which the monitoring component cannot show (it has no shared
# windows: under it the program falls back to the all-gather).
#
# This prints, it does not judge: it is not a test (machines are shared).
#   EMBER_MPI_BUILD  the MPI build (default build-mpi/)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${EMBER_MPI_BUILD:-$here/../build-mpi}
bin=$build/bin
SCALE=${SCALE:-20} EF=${EF:-16} ITERS=${ITERS:-20} RUNS=${RUNS:-5} PARTS=${PARTS:-16}
[ -x "$bin/ember-pagerank" ] || { echo "mpi.sh: no MPI build in $build (cmake -B build-mpi -DEMBER_MPI=ON)" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "mpi.sh: no mpirun" >&2; exit 1; }
export OMPI_MCA_plm_rsh_agent=false
[ "$(id -u)" != 0 ] || export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work=${BENCH_DIR:-$(mktemp -d)}
[ -n "${BENCH_DIR:-}" ] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"

graph=$work/kron$SCALE.h5
[ -f "$graph" ] || "$bin/ember-gen" kron --scale "$SCALE" --edge-factor "$EF" --seed 1 \
    --output "$graph" --quiet
n=$(h5dump -a /csr/n "$graph" 2>/dev/null | awk '/\(0\)/ { print $2 }')
[ -n "$n" ] || n=$(( 1 << SCALE ))

median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
compute() { awk -F'"compute_seconds": ' '/"event": "done"/ { split($2, a, ","); print a[1] }' "$1"; }

# run RANKS THREADS ITERS METRICS [mpirun options...]
run() {
    local p=$1 t=$2 it=$3 m=$4
    shift 4
    rm -f "$m"
    OMP_NUM_THREADS=$t mpirun --oversubscribe --bind-to none -x OMP_NUM_THREADS -n "$p" "$@" \
        "$bin/ember-pagerank" --input "$graph" --iterations "$it" --tolerance 0 \
        --partitions "$PARTS" --threads "$t" --quiet --metrics "$m" --output "$work/r.$p.csv"
}

: > "$work/shared" ; : > "$work/mpi" ; : > "$work/mpi-ag"
for _ in $(seq "$RUNS"); do
    run 1 2 "$ITERS" "$work/m1.jsonl" >/dev/null && compute "$work/m1.jsonl" >> "$work/shared"
    run 2 1 "$ITERS" "$work/m2.jsonl" >/dev/null && compute "$work/m2.jsonl" >> "$work/mpi"
    EMBER_MPI_SHARED=0 run 2 1 "$ITERS" "$work/m3.jsonl" -x EMBER_MPI_SHARED >/dev/null &&
        compute "$work/m3.jsonl" >> "$work/mpi-ag"
done
cmp -s "$work/r.1.csv" "$work/r.2.csv" || echo "mpi.sh: WARNING: 1-rank and 2-rank ranks differ" >&2
s=$(median < "$work/shared") m=$(median < "$work/mpi") g=$(median < "$work/mpi-ag")
ratio=$(awk -v a="$m" -v b="$s" 'BEGIN { printf "%.2f", a / b }')
ratio_ag=$(awk -v a="$g" -v b="$s" 'BEGIN { printf "%.2f", a / b }')

# Where the time goes: one more run of each, every rank's phases.
phases=$( {
    EMBER_PHASES=1 run 1 2 "$ITERS" "$work/p1.jsonl" -x EMBER_PHASES 2>&1 |
        sed -n 's/^ember-pagerank: rank/  1x2     rank/p'
    EMBER_PHASES=1 run 2 1 "$ITERS" "$work/p2.jsonl" -x EMBER_PHASES 2>&1 |
        sed -n 's/^ember-pagerank: rank/  2x1     rank/p' | sort
    EMBER_PHASES=1 EMBER_MPI_SHARED=0 run 2 1 "$ITERS" "$work/p3.jsonl" -x EMBER_PHASES \
        -x EMBER_MPI_SHARED 2>&1 | sed -n 's/^ember-pagerank: rank/  2x1-ag  rank/p' | sort
} )

# Bytes: Open MPI's own count, ITERS and 2 x ITERS iterations, 2 ranks.
sent() { # total bytes every rank sent (point to point, collectives' included)
    cat "$1".*.prof | awk '$1 == "I" || $1 == "E" { s += $4 } END { print s + 0 }'
}
mon=(--mca pml_monitoring_enable 2 --mca pml_monitoring_enable_output 3)
rm -f "$work"/mon*.prof
# bytes_per_iter PREFIX [mpirun options]: (2 ITERS run - ITERS run) / ITERS
bytes_per_iter() {
    local pre=$1
    shift
    run 2 1 "$ITERS" "$work/b1.jsonl" "${mon[@]}" --mca pml_monitoring_filename "$work/${pre}A" "$@" >/dev/null
    run 2 1 $(( 2 * ITERS )) "$work/b2.jsonl" "${mon[@]}" --mca pml_monitoring_filename "$work/${pre}B" "$@" >/dev/null
    echo $(( ($(sent "$work/${pre}B") - $(sent "$work/${pre}A")) / ITERS ))
}
# (The monitoring component's one-sided wrapper has no shared windows,
# so under it PageRank falls back to the all-gather: the window's bytes
# are not countable this way; EMBER_MPI_SHARED=0 says so explicitly.)
per_iter=$(EMBER_MPI_SHARED=0 bytes_per_iter monAG -x EMBER_MPI_SHARED)
k=$PARTS
P=2 F=5
formula=$(awk -v n="$n" -v k="${k:-0}" -v P=$P -v F=$F 'BEGIN {
    l = 0; for (q = 1; q < P; q *= 2) l++;
    printf "%.0f", 8 * n * (P - 1) + 16 * k * (P - 1) + 8 * F * P * l }')
formula_sh=$(( formula - 8 * n * (P - 1) ))

echo "PageRank, Kronecker scale $SCALE (n = $n), $ITERS iterations, $PARTS partitions, medians of $RUNS (load: $(cut -d' ' -f1-3 /proc/loadavg))"
printf "  %-40s %8.3f s\n" "1 rank x 2 threads (baseline)" "$s"
printf "  %-40s %8.3f s  %5sx   goal <= 1.3\n" "2 ranks x 1 thread (shared window)" "$m" "$ratio"
printf "  %-40s %8.3f s  %5sx\n" "2 ranks x 1 thread (all-gather)" "$g" "$ratio_ag"
echo "  ms per iteration, one run each (tasks: time in prepare / pull themselves):"
echo "$phases" | sed 's/, ms per iteration ([0-9]*)://'
printf "  %-40s %10d bytes (Open MPI's count)\n" "moved per iteration, all-gather" "$per_iter"
printf "  %-40s %10d bytes (docs/mpi.md)   measured / formula %s\n" "formula B(2)" "$formula" \
    "$(awk -v a="$per_iter" -v b="$formula" 'BEGIN { printf "%.3f", a / b }')"
printf "  %-40s %10d bytes (B(2) - 8 n; not countable under Open MPI's monitoring)\n" \
    "shared window, formula" "$formula_sh"
if [ -n "${BENCH_SUMMARY:-}" ]; then
    echo "pagerank scale $SCALE: 2 ranks x 1 / 1 rank x 2 threads | ${ratio}x | <= 1.3x" >> "$BENCH_SUMMARY"
fi
