#!/usr/bin/env bash
# The write time of one PageRank checkpoint under MPI (issue 12, section
# 4): ember-pagerank on a Kronecker graph (SCALE, default 20), ITERS
# (default 10) iterations, a checkpoint every 5, so ITERS / 5 checkpoints
# of the ranks (8 bytes a vertex). Runs, interleaved, RUNS times (default
# 5):
#   serial   the serial build, 1 process x 2 threads (the baseline);
#   mpi1     the MPI build, mpirun -n 1 x 2 threads;
#   coll2    the MPI build, 2 ranks x 1 thread: the collective write;
#   gather2  2 ranks x 1 thread of another MPI build, BASE_BIN (optional):
#            ember before the collective writer, which all-gathered the
#            records and had rank 0 write the file.
# The figure is each run's checkpoint_write_seconds (the loop's own timing
# of its writes, start to commit, on rank 0, from --metrics) divided by its checkpoint count; the
# median of RUNS, and its ratio to the serial run's. Printed, never
# asserted: these machines are shared and noisy.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sbin=${EMBER_SERIAL_BIN:-$here/../build/bin}
bin=${EMBER_BIN:-$here/../build-mpi/bin}
base=${BASE_BIN:-}
RUNS=${RUNS:-5} SCALE=${SCALE:-20} ITERS=${ITERS:-10}
export OMPI_MCA_plm_rsh_agent=false OMP_WAIT_POLICY=passive
if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
work=$(mktemp -d "${BENCH_DIR:-/tmp}/ember-mpickpt.XXXXXX")
trap 'rm -rf "$work"' EXIT
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

"$sbin/ember-gen" kron --scale "$SCALE" --edge-factor 16 --seed 1 --output "$work/g.h5" --quiet
args=(--input "$work/g.h5" --iterations "$ITERS" --tolerance 0 --quiet
      --checkpoint-dir "$work/ck" --checkpoint-every 5 --keep 1000 --metrics "$work/m.jsonl")
# One run: prints the seconds a checkpoint took (mean of the run's).
per_ckpt() {
    local n s
    n=$(ls "$work/ck" | grep -c '^ckpt-.*\.h5$' || true)
    s=$(sed -n 's/.*"event": "[a-z]*".*"checkpoint_write_seconds": \([0-9.e-]*\).*/\1/p' "$work/m.jsonl")
    # builds before checkpoint_write_seconds gave the writes' time here
    [ -n "$s" ] || s=$(sed -n 's/.*"event": "[a-z]*".*"checkpoint_seconds": \([0-9.e-]*\).*/\1/p' "$work/m.jsonl")
    [ -n "$s" ] && [ "${n:-0}" -gt 0 ] || { echo "no checkpoint timing in $work/m.jsonl" >&2; exit 1; }
    awk -v s="$s" -v n="$n" 'BEGIN { printf "%.6f\n", s / n }'
}
run() { # run NAME COMMAND...
    local name=$1; shift
    rm -rf "$work/ck" "$work/m.jsonl"
    "$@" "${args[@]}" --output "$work/$name.h5" > /dev/null 2> "$work/$name.err" \
        || { cat "$work/$name.err" >&2; exit 1; }
    per_ckpt >> "$work/$name"
}
mpi() { local n=$1 t=$2; shift 2
    OMP_NUM_THREADS=$t mpirun --oversubscribe --bind-to none -x OMP_NUM_THREADS \
        -x OMP_WAIT_POLICY -n "$n" "$@"; }
names="serial mpi1 coll2${base:+ gather2}"
for n in $names; do : > "$work/$n"; done
loads=""
for _ in $(seq "$RUNS"); do
    OMP_NUM_THREADS=2 run serial "$sbin/ember-pagerank" --threads 2
    run mpi1 mpi 1 2 "$bin/ember-pagerank" --threads 2
    run coll2 mpi 2 1 "$bin/ember-pagerank" --threads 1
    [ -z "$base" ] || run gather2 mpi 2 1 "$base/ember-pagerank" --threads 1
    loads="$loads $(cut -d' ' -f1 /proc/loadavg)"
done
for n in $names; do
    cmp -s <(h5dump -d /ranks "$work/serial.h5" | tail -n +3) \
           <(h5dump -d /ranks "$work/$n.h5" | tail -n +3) \
        || { echo "ranks of $n differ from the serial run's" >&2; exit 1; }
done
s=$(median < "$work/serial")
echo "pagerank scale $SCALE, $ITERS iterations, a checkpoint every 5; seconds per checkpoint write, median of $RUNS (1-min load averages:$loads)"
for n in $names; do
    m=$(median < "$work/$n")
    printf "  %-8s %.4f s  (x%.2f of serial)   runs: %s\n" "$n" "$m" \
        "$(awk -v a="$m" -v b="$s" 'BEGIN { print a / b }')" "$(paste -sd' ' "$work/$n")"
done
