#!/usr/bin/env bash
# Every benchmark, one after the other (make bench). Each prints ratios
# against baselines measured in the same run; none judges: these machines
# are shared and noisy, so read the medians. About 20 minutes on 2 cores.
# Ends with a summary table of the figures that have goals (issue 11).
#   RUNS=N      runs per measurement (default: each script's own)
#   THREADS=N   OpenMP threads (default 2)
#   EMBER_BUILD the build directory (default build/)
#   BENCH_CFLAGS more flags for the C programs the scripts build against
#               libember (a sanitizer build's -fsanitize=..., which such a
#               program needs to load that libember at all)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export EMBER_BUILD=${EMBER_BUILD:-$here/../build}
status=0
# Scripts that know their goals append "what | measured | goal" rows here.
export BENCH_SUMMARY
BENCH_SUMMARY=$(mktemp)
trap 'rm -f "$BENCH_SUMMARY"' EXIT
for b in maps checkpoint ckpt_overhead filesum pagerank kmeans kmeans-wide cc stream_bench sssp sssp_gapbs \
    jacobi spark_pagerank spark_kmeans spark_lr gapbs; do
    echo "=== $b"
    case $b in
    kmeans-wide) KM_N=50000 KM_D=512 KM_K=64 bash "$here/kmeans.sh" ;;
    *) bash "$here/$b.sh" ;;
    esac || { echo "=== $b failed" >&2; status=1; }
    echo
done
if [ -s "$BENCH_SUMMARY" ]; then
    echo "=== summary (medians of this run)"
    awk -F' [|] ' '{ printf "  %-58s %10s   goal %s\n", $1, $2, $3 }' "$BENCH_SUMMARY"
fi
exit $status
