#!/usr/bin/env bash
# Spark's logistic regression example on ember (bench/spark_lr.c: each
# iteration maps every cached point to its gradient term and sums them
# with ember_sum), against the same loop over plain arrays (OpenMP, no
# ember) and against numpy (X @ w and X.T @ s, OpenBLAS). N points
# (default 10^6) of 10 dimensions and a label, Gaussian blobs from
# ember-gen; ITERS iterations (default 100) and a tenth of them, so that
# loading cancels from the time an iteration; 2 threads, runs
# interleaved, medians of RUNS. Prints each one's time an iteration, the
# idiom's whole process and peak RSS. numpy is optional (/usr/bin/python3
# with numpy; Debian python3-numpy and libopenblas0-pthread): without it
# its rows are left out, as with NUMPY=no. Printed, never asserted.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${EMBER_BUILD:-$here/../build}
bin=${EMBER_BIN:-$build/bin}
N=${N:-1000000} ITERS=${ITERS:-100} RUNS=${RUNS:-3}
export OMP_NUM_THREADS=${THREADS:-2} OPENBLAS_NUM_THREADS=${THREADS:-2}
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

gcc -O3 ${BENCH_CFLAGS:-} -fopenmp -I"$here/../include" "$here/spark_lr.c" \
    -L"$build/lib" -lember -Wl,-rpath,"$build/lib" -lm -o "$work/spark_lr"
"$bin/ember-gen" blobs --n "$N" --d 11 --k 2 --seed 5 --output "$work/p.csv" --quiet
few=$(( ITERS / 10 > 0 ? ITERS / 10 : 1 ))
numpy=no
[ "${NUMPY:-auto}" = no ] || ! "$py" -c 'import numpy' 2> /dev/null || numpy=yes
cat > "$work/lr.py" << 'EOF'
import sys, time
import numpy as np
t0 = time.perf_counter()
a = np.loadtxt(sys.argv[1], delimiter=",", skiprows=1)
x, y = np.ascontiguousarray(a[:, :10]), np.where(a[:, 10] >= 0, 1.0, -1.0)
t1 = time.perf_counter()
w = np.zeros(10)
for _ in range(int(sys.argv[2])):
    s = (1 / (1 + np.exp(-y * (x @ w))) - 1) * y
    w -= (x.T @ s) / len(y)
print(time.perf_counter() - t1, t1 - t0)
EOF
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
# run NAME ITERATIONS MODE: appends "loop_seconds whole_seconds peak_kib
# load_seconds"
run() {
    /usr/bin/time -f "%e %M" -o "$work/t" "$work/spark_lr" "$work/p.csv" "$2" "$3" \
        > /dev/null 2> "$work/err" || { cat "$work/err" >&2; exit 1; }
    echo "$(sed -n 's/^load .* loop \([0-9.]*\) s$/\1/p' "$work/err") $(cat "$work/t")" \
        "$(sed -n 's/^load \([0-9.]*\) s loop .*/\1/p' "$work/err")" >> "$work/$1"
}
for _ in $(seq "$RUNS"); do
    run idiom "$ITERS" idiom
    run idiom_few "$few" idiom
    run plain "$ITERS" plain
    run plain_few "$few" plain
    if [ $numpy = yes ]; then
        env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$py" "$work/lr.py" "$work/p.csv" "$ITERS" \
            >> "$work/numpy"
    fi
done
col() { cut -d' ' -f"$2" "$work/$1" | median; }
echo "Spark's logistic regression: $N points of 10 dimensions, $ITERS and $few iterations,"
echo "$OMP_NUM_THREADS threads, medians of $RUNS interleaved runs (ms an iteration: loading cancels):"
awk -v i="$(col idiom 1)" -v ifw="$(col idiom_few 1)" -v p="$(col plain 1)" \
    -v pf="$(col plain_few 1)" -v whole="$(col idiom 2)" -v kib="$(col idiom 3)" \
    -v load="$(col idiom 4)" -v mb="$(du -m "$work/p.csv" | cut -f1)" \
    -v np="$([ $numpy = yes ] && col numpy 1 || echo -1)" \
    -v npl="$([ $numpy = yes ] && col numpy 2 || echo -1)" -v it="$ITERS" -v few="$few" 'BEGIN {
    ii = (i - ifw) / (it - few) * 1000; pp = (p - pf) / (it - few) * 1000
    if (ii < 0 || pp < 0) { print "  (the runs differ by less than the noise: toy sizes)" }
    ii = ii < 0 ? 0 : ii; pp = pp < 0 ? 0 : pp
    printf "  idiom          %8.2f ms an iteration   whole process %.2f s, peak RSS %.1f MiB\n",
        ii, whole, kib / 1024
    printf "  plain arrays   %8.2f ms an iteration\n", pp
    if (np >= 0)
        printf "  numpy          %8.2f ms an iteration\n", np / it * 1000
    else
        print "  numpy          not installed (python3-numpy)"
    printf "  idiom / plain %.2fx an iteration\n", (pp > 0 ? ii / pp : 0)
    if (np > 0)
        printf "  idiom / numpy %.2fx an iteration\n", ii / (np / it * 1000)
    printf "  the %d MB CSV: ember_read_csv %.3f s", mb, load
    if (npl > 0)
        printf ", numpy.loadtxt %.3f s: %.2fx", npl, load / npl
    printf "\n" }'
