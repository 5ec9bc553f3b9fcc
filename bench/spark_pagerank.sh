#!/usr/bin/env bash
# Spark's PageRank example written on ember (bench/spark_pagerank.c: a join
# and a reduce_by_key every iteration, the state cached and bound to an
# ember_loop), against ember-pagerank on the same edge list, which keeps
# its state in arrays. Kronecker scale SCALE (default 14), edge factor EF
# (default 8), ITERS iterations (default 200) and a tenth of them, 2
# threads, runs interleaved, medians of RUNS. Prints each one's time an
# iteration (the idiom's: its whole process less the tenth's run, so
# loading cancels; ember-pagerank's: its compute over its iterations) and
# peak RSS, and the idiom's RSS after ITERS over after ITERS/10: 1.0 when
# an iteration holds nothing past its end. (Before 2026-12-06 freed
# shuffle outputs piled up as the block store's spares: 7.6x at 200.)
# The two compute different ranks (the example drops vertices no edge
# points to and has no dangling mass), so no sums are compared. Printed,
# never asserted.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${EMBER_BUILD:-$here/../build}
bin=${EMBER_BIN:-$build/bin}
SCALE=${SCALE:-14} EF=${EF:-8} ITERS=${ITERS:-200} RUNS=${RUNS:-3}
export OMP_NUM_THREADS=${THREADS:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

gcc -O3 ${BENCH_CFLAGS:-} -fopenmp -I"$here/../include" "$here/spark_pagerank.c" \
    -L"$build/lib" -lember -Wl,-rpath,"$build/lib" -lm -o "$work/spark_pagerank"
"$bin/ember-gen" kron --scale "$SCALE" --edge-factor "$EF" --seed 3 --output "$work/g.el" --quiet
few=$(( ITERS / 10 > 0 ? ITERS / 10 : 1 ))
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
# One run: appends "seconds peak_kib" to $work/NAME (ember-pagerank's
# seconds: its compute, from its summary).
timed() {
    local name=$1; shift
    /usr/bin/time -f "%e %M" -o "$work/t" "$@" > /dev/null 2> "$work/err"
    local s
    s=$(sed -n 's/.*compute \([0-9.]*\) s.*/\1/p' "$work/err")
    echo "${s:-$(cut -d' ' -f1 "$work/t")} $(cut -d' ' -f2 "$work/t")" >> "$work/$name"
}
for _ in $(seq "$RUNS"); do
    timed idiom "$work/spark_pagerank" "$work/g.el" "$ITERS"
    timed idiom_few "$work/spark_pagerank" "$work/g.el" "$few"
    timed prog "$bin/ember-pagerank" --input "$work/g.el" --iterations "$ITERS" --tolerance 0
done
for f in idiom idiom_few prog; do
    eval "${f}_s=\$(cut -d' ' -f1 \"\$work/$f\" | median)"
    eval "${f}_kib=\$(cut -d' ' -f2 \"\$work/$f\" | median)"
done
echo "Spark's PageRank on ember against ember-pagerank, Kronecker scale $SCALE edge factor $EF,"
echo "$ITERS and $few iterations, $OMP_NUM_THREADS threads, medians of $RUNS interleaved runs:"
awk -v is="$idiom_s" -v ifs="$idiom_few_s" -v ps="$prog_s" \
    -v ik="$idiom_kib" -v ifk="$idiom_few_kib" -v pk="$prog_kib" -v it="$ITERS" -v few="$few" 'BEGIN {
    ii = (is - ifs) / (it - few); pi = ps / it
    if (ii < 0) { ii = 0; print "  (the two idiom runs differ by less than the noise: toy sizes)" }
    printf "  idiom          %8.2f ms an iteration   peak RSS %7.1f MiB (%d iterations), %7.1f MiB (%d)\n", ii * 1000, ik / 1024, it, ifk / 1024, few
    printf "  ember-pagerank %8.3f ms an iteration   peak RSS %7.1f MiB\n", pi * 1000, pk / 1024
    printf "  idiom / ember-pagerank %.0fx an iteration; idiom RSS %d / %d iterations %.2fx\n", (pi > 0 ? ii / pi : 0), it, few, ik / ifk }'
