#!/usr/bin/env bash
# k-means written on ember in Spark's style (bench/spark_kmeans.c: each
# iteration broadcasts the centroids, maps every point to its closest and
# sums them with reduce_by_key), against ember-kmeans on the same points
# and the same first centroids, which keeps them in arrays and skips what
# its bounds allow. Gaussian blobs of N points (default 10^6) in 4
# dimensions, K clusters (default 8), ITERS iterations (default 50) and a
# tenth of them, 2 threads, runs interleaved, medians of RUNS. Prints each
# one's time an iteration (the idiom's: its whole process less the
# tenth's run, so loading cancels; ember-kmeans': its compute over the
# iterations it ran, from --metrics) and peak RSS. (Before 2026-12-06 the
# reduce held and sorted every point's record each iteration: 44 ms an
# iteration at the defaults, 97 MiB.) The two need not agree to the bit
# (ember-kmeans sums exactly, and stops when no centroid moves), so no
# centroids are compared. Printed, never asserted.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${EMBER_BUILD:-$here/../build}
bin=${EMBER_BIN:-$build/bin}
N=${N:-1000000} K=${K:-8} ITERS=${ITERS:-50} RUNS=${RUNS:-3}
export OMP_NUM_THREADS=${THREADS:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

gcc -O3 ${BENCH_CFLAGS:-} -fopenmp -I"$here/../include" "$here/spark_kmeans.c" \
    -L"$build/lib" -lember -Wl,-rpath,"$build/lib" -lm -o "$work/spark_kmeans"
"$bin/ember-gen" blobs --n "$N" --d 4 --k "$K" --seed 3 --output "$work/p.csv" --quiet
sed -n "2,$((K + 1))p" "$work/p.csv" > "$work/init.csv" # the idiom's first K points
few=$(( ITERS / 10 > 0 ? ITERS / 10 : 1 ))
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
timed() { # NAME CMD...: appends "seconds peak_kib" to $work/NAME
    local name=$1; shift
    /usr/bin/time -f "%e %M" -o "$work/t" "$@" > /dev/null 2> "$work/err" ||
        { cat "$work/err" >&2; exit 1; }
    cat "$work/t" >> "$work/$name"
}
for _ in $(seq "$RUNS"); do
    timed idiom "$work/spark_kmeans" "$work/p.csv" "$K" "$ITERS"
    timed idiom_few "$work/spark_kmeans" "$work/p.csv" "$K" "$few"
    timed prog "$bin/ember-kmeans" --input "$work/p.csv" --init "$work/init.csv" --k "$K" \
        --iterations "$ITERS" --tolerance 0 --output "$work/km.h5" --metrics "$work/m.json"
    sed -n 's/.*"event": "done".*"iterations": \([0-9]*\).*"compute_seconds": \([0-9.e+-]*\).*/\2 \1/p' \
        "$work/m.json" >> "$work/prog_it"
done
for f in idiom idiom_few prog; do
    eval "${f}_s=\$(cut -d' ' -f1 \"\$work/$f\" | median)"
    eval "${f}_kib=\$(cut -d' ' -f2 \"\$work/$f\" | median)"
done
prog_ms=$(awk '{ print 1000 * $1 / ($2 > 0 ? $2 : 1) }' "$work/prog_it" | median)
echo "Spark-style k-means on ember against ember-kmeans, $N points in 4 dimensions, k = $K,"
echo "$ITERS and $few iterations, $OMP_NUM_THREADS threads, medians of $RUNS interleaved runs:"
awk -v is="$idiom_s" -v ifs="$idiom_few_s" -v pm="$prog_ms" -v ik="$idiom_kib" \
    -v pk="$prog_kib" -v it="$ITERS" -v few="$few" 'BEGIN {
    ii = (is - ifs) / (it - few) * 1000
    if (ii < 0) { ii = 0; print "  (the two idiom runs differ by less than the noise: toy sizes)" }
    printf "  idiom         %8.2f ms an iteration   peak RSS %7.1f MiB\n", ii, ik / 1024
    printf "  ember-kmeans  %8.3f ms an iteration   peak RSS %7.1f MiB\n", pm, pk / 1024
    printf "  idiom / ember-kmeans %.1fx an iteration\n", (pm > 0 ? ii / pm : 0) }'
