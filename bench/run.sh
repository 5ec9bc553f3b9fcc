#!/usr/bin/env bash
# Every benchmark, one after the other (make bench). Each prints ratios
# against baselines measured in the same run; none judges: these machines
# are shared and noisy, so read the medians. About 15 minutes on 2 cores.
#   RUNS=N      runs per measurement (default: each script's own)
#   THREADS=N   OpenMP threads (default 2)
#   EMBER_BUILD the build directory (default build/)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export EMBER_BUILD=${EMBER_BUILD:-$here/../build}
status=0
for b in maps checkpoint ckpt_overhead filesum pagerank kmeans stream_bench sssp jacobi; do
    echo "=== $b"
    bash "$here/$b.sh" || { echo "=== $b failed" >&2; status=1; }
    echo
done
exit $status
