#!/usr/bin/env bash
# Peak memory per rank of ember-pagerank (its own getrusage figure, the
# "rank R of N holds rows [a, b): E of m edges, peak memory X MiB" line)
# on a Kronecker graph of scale SCALE (default 20, edge factor 16), 16
# partitions, ITERS iterations (default 20), 1 thread a rank:
#   1 rank                 the whole graph
#   2 ranks, whole         --verify makes every rank load every row (today's
#                          load for text and files without the pull layout)
#   2 ranks, owned rows    each rank reads only its rows (docs/mpi.md)
# next to docs/mpi.md's 40n + 4m/P. Memory does not depend on the load
# of the machine; this prints, it does not judge.
#   EMBER_MPI_BUILD  the MPI build (default build-mpi/)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${EMBER_MPI_BUILD:-$here/../build-mpi}
bin=$build/bin
SCALE=${SCALE:-20} EF=${EF:-16} ITERS=${ITERS:-20} PARTS=${PARTS:-16}
[ -x "$bin/ember-pagerank" ] || { echo "mpi_memory.sh: no MPI build in $build" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "mpi_memory.sh: no mpirun" >&2; exit 1; }
export OMPI_MCA_plm_rsh_agent=false OMP_WAIT_POLICY=passive
[ "$(id -u)" != 0 ] || export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work=${BENCH_DIR:-$(mktemp -d)}
[ -n "${BENCH_DIR:-}" ] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
graph=$work/kron$SCALE.h5
[ -f "$graph" ] || "$bin/ember-gen" kron --scale "$SCALE" --edge-factor "$EF" --seed 1 \
    --output "$graph" --quiet

# run RANKS LABEL [flags...]: one line per rank.
run() {
    local p=$1 label=$2
    shift 2
    OMP_NUM_THREADS=1 mpirun --oversubscribe --bind-to none -x OMP_NUM_THREADS \
        -x OMP_WAIT_POLICY -n "$p" "$bin/ember-pagerank" --input "$graph" \
        --iterations "$ITERS" --tolerance 0 --partitions "$PARTS" --threads 1 \
        --output "$work/r.csv" "$@" > "$work/log" 2>&1
    if [ "$p" = 1 ]; then
        sed -n "s/.*peak memory \([0-9.]*\) MiB.*/  $label: rank 0 \1 MiB (every edge)/p" \
            "$work/log" | head -n 1
    else
        sed -n "s/^ember-pagerank: rank \([0-9]*\) of [0-9]* holds rows \[[0-9]*, [0-9]*): \([0-9]*\) of \([0-9]*\) edges, peak memory \([0-9.]*\) MiB/  $label: rank \1 \4 MiB (\2 of \3 edges)/p" \
            "$work/log" | sort
    fi
}
echo "ember-pagerank peak memory per rank, Kronecker scale $SCALE, $PARTS partitions"
run 1 "1 rank             "
run 2 "2 ranks, whole     " --verify
run 2 "2 ranks, owned rows"
