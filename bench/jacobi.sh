#!/usr/bin/env bash
# The Jacobi-style idiom loop of issue 8 (bench/jacobi.c): a new user's
# Spark idiom (bc = broadcast(x); nx = map(x, sweep); ember_ds_uses(nx, bc);
# cache(nx); sum(nx); x = nx; a checkpoint every 10 iterations) against the
# bundled programs' hand-managed arrays (the same loop and checkpoints) and
# a plain OpenMP loop with no ember. Kronecker scale SCALE (default 16),
# edge factor 16, undirected, ITERS iterations (default 200), 2 threads;
# runs interleaved, medians of RUNS runs. Reports the loop's seconds
# (checkpoints included) with and without a checkpoint directory (the
# checkpoints' fsyncs swing with the disk), the ratios (the goal: idiom <=
# 1.5 x arrays), peak RSS and the block store's peak bytes, and the sums.
# Benchmarks are never ctest assertions: this prints, it does not judge.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${EMBER_BUILD:-$here/../build}
bin=${EMBER_BIN:-$build/bin}
SCALE=${SCALE:-16} EF=${EF:-16} ITERS=${ITERS:-200} RUNS=${RUNS:-5}
THREADS=${THREADS:-2}
export OMP_NUM_THREADS=$THREADS
work=${BENCH_DIR:-$(mktemp -d)}
[ -n "${BENCH_DIR:-}" ] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"

gcc -O3 ${BENCH_CFLAGS:-} -fopenmp -I"$here/../include" "$here/jacobi.c" -L"$build/lib" -lember \
    -Wl,-rpath,"$build/lib" -lm -o "$work/jacobi"
graph=$work/kron$SCALE.h5
[ -f "$graph" ] || "$bin/ember-gen" kron --scale "$SCALE" --edge-factor "$EF" --seed 1 \
    --output "$graph" --quiet

median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
load=$(cut -d' ' -f1-3 /proc/loadavg)
modes="idiom arrays idiom-nock arrays-nock plain"
for m in $modes; do : > "$work/$m.s"; : > "$work/$m.rss"; done
for _ in $(seq "$RUNS"); do
    for m in $modes; do
        rm -rf "$work/ck"
        dir=$work/ck
        case $m in *-nock) dir= ;; esac
        /usr/bin/time -f "%M" -o "$work/t" "$work/jacobi" "$graph" "$ITERS" "${m%-nock}" $dir \
            > "$work/$m.out"
        awk '/^seconds/ { print $2 }' "$work/$m.out" >> "$work/$m.s"
        cat "$work/t" >> "$work/$m.rss"
    done
done
read -r n m < <(awk '/^vertices/ { n = $2 } /^edges/ { m = $2 } END { print n, m }' "$work/plain.out")
echo "load average at the start: $load"
echo "Jacobi sweeps of (L + I) x = 1, Kronecker scale $SCALE edge factor $EF undirected ($n vertices,"
echo "$m edges stored), $ITERS iterations, a checkpoint every 10 (idiom, arrays), $THREADS threads,"
echo "medians of $RUNS interleaved runs:"
for mode in $modes; do
    s=$(median < "$work/$mode.s") r=$(median < "$work/$mode.rss")
    b=$(awk '/^peak_store_bytes/ { print $2 }' "$work/$mode.out")
    sum=$(awk '/^sum/ { print $2 }' "$work/$mode.out")
    printf "  %-11s %8.3f s   peak RSS %7.1f MiB   block store peak %7.1f MiB   sum %s\n" \
        "$mode" "$s" "$(awk -v r="$r" 'BEGIN { print r / 1024 }')" \
        "$(awk -v b="$b" 'BEGIN { print b / 1048576 }')" "$sum"
    eval "sec_${mode//-/}=$s"
done
echo "  (-nock: no checkpoint directory, so no checkpoints)"
awk -v i="$sec_idiom" -v a="$sec_arrays" -v ni="$sec_idiomnock" -v na="$sec_arraysnock" \
    -v p="$sec_plain" 'BEGIN {
    printf "  idiom / arrays %.2f x with checkpoints, %.2f x without (goal <= 1.5 x);\n", i / a, ni / na
    printf "  without checkpoints: idiom / plain %.2f x, arrays / plain %.2f x\n", ni / p, na / p }'
