#!/usr/bin/env bash
# Repeated maps (issue: core engine): ember-maps against numpy, a fused C
# loop and a 10-pass C loop, all measured in this run, whole process, with
# 2 threads. Prints medians of RUNS runs, ratios to numpy, and peak RSS.
# Also the MEMORY_ONLY_SER footprint of a compressible 10^8 x i64 dataset.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${EMBER_BUILD:-$here/../build}
N=${N:-100000000} M=${M:-10} RUNS=${RUNS:-5}
export OMP_NUM_THREADS=${THREADS:-2}
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

gcc -O2 -march=native -fopenmp "$here/maps_baseline.c" -o "$work/maps_baseline"
gcc -O2 -fopenmp -I"$here/../include" "$here/ser_ratio.c" -L"$build/lib" -lember \
    -Wl,-rpath,"$build/lib" -o "$work/ser_ratio"
cat > "$work/np.py" <<PY
import numpy as np
a = np.arange($N, dtype=np.int64)
for _ in range($M):
    a += 1
print("sum:", int(a.sum()))
print("count:", a.size)
PY

# median wall seconds and peak RSS (KiB) of a command over RUNS runs
measure() {
    local name=$1; shift
    local out="$work/$name.times"
    : > "$out"
    for _ in $(seq "$RUNS"); do
        /usr/bin/time -f "%e %M" -o "$work/t" "$@" > "$work/$name.out"
        cat "$work/t" >> "$out"
    done
    sort -n "$out" | awk -v n="$RUNS" 'NR == int((n + 1) / 2) { print $1, $2 }'
}

declare -A sec rss
for job in numpy ember fused passes; do
    case $job in
        numpy)  r=$(measure numpy "$py" "$work/np.py") ;;
        ember)  r=$(measure ember "$build/bin/ember-maps" --n "$N" --maps "$M") ;;
        fused)  r=$(measure fused "$work/maps_baseline" fused "$N" "$M") ;;
        passes) r=$(measure passes "$work/maps_baseline" passes "$N" "$M") ;;
    esac
    sec[$job]=${r% *}
    rss[$job]=${r#* }
done
for job in ember fused passes; do
    cmp -s "$work/numpy.out" "$work/$job.out" || { echo "output of $job differs from numpy" >&2; exit 1; }
done
echo "repeated maps: N=$N M=$M threads=$OMP_NUM_THREADS, median of $RUNS, whole process"
printf "%-8s %9s %10s %12s\n" job seconds vs_numpy peak_rss_MB
for job in numpy ember fused passes; do
    awk -v j="$job" -v s="${sec[$job]}" -v b="${sec[numpy]}" -v r="${rss[$job]}" \
        'BEGIN { printf "%-8s %9.3f %9.3fx %12.1f\n", j, s, s / b, r / 1024 }'
done
echo
"$work/ser_ratio" "$N"
