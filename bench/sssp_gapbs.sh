#!/usr/bin/env bash
# Shortest paths against GAPBS `sssp` (delta-stepping), both whole
# processes reading the same weighted edge list, on two shapes:
#   - grid: a K x K grid (default 1000), weights 1..9, both ways (a road
#     network's shape: long shortest paths, degree 4);
#   - kron: GAPBS's Kronecker graph of scale SCALE (default 18), its own
#     weights 1..255, undirected.
# Contenders: ember-sssp --plan delta (its default width), --plan push and
# --plan pull (the default), and GAPBS `sssp -n 1` with -d2 (its benchmark
# suite's width for kron). Prints, per shape: medians of RUNS (default 5)
# interleaved runs of the whole process, and the compute alone (ember's
# --metrics compute_seconds against GAPBS's trial time), each as a ratio to
# GAPBS; and whether every ember plan wrote the same distances. GAPBS is
# built from ../shared/peers/gapbs (or $GAPBS_SRC) in a temporary
# directory. With $BENCH_SUMMARY set, the ratios are appended there as table
# rows (bench/run.sh prints them). Printed, never asserted.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${EMBER_BUILD:-$here/../build}
bin=${EMBER_BIN:-$build/bin}
SCALE=${SCALE:-18} K=${K:-1000} RUNS=${RUNS:-5} THREADS=${THREADS:-2}
export OMP_NUM_THREADS=$THREADS
. "$here/gapbs_setup.sh"
gapbs_setup sssp-gapbs sssp converter
awk -v k="$K" 'BEGIN { for (r = 0; r < k; r++) for (c = 0; c < k; c++) { v = r * k + c
    if (c + 1 < k) print v, v + 1, 1 + (v * 31 + 7) % 9
    if (r + 1 < k) print v, v + k, 1 + (v * 17 + 3) % 9 } }' > "$work/grid.wel"
"$g/converter" -g"$SCALE" -k16 -w -e "$work/kron.wel" > /dev/null

# timed OUT CMD...: the wall seconds of CMD appended to $work/t.OUT
timed() {
    local out=$1 t0 t1
    shift
    t0=$(now)
    "$@" > "$work/last.out" 2> /dev/null
    t1=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", b - a }' >> "$work/t.$out"
}
plans=(delta push pull)
for shape in grid kron; do
    graph=$work/$shape.wel
    for f in gapbs gapbs.c "${plans[@]}" "${plans[@]/%/.c}"; do : > "$work/t.$f"; done
    cat "$graph" > /dev/null # warm the cache
    load0=$(cut -d' ' -f1-3 /proc/loadavg)
    for _ in $(seq "$RUNS"); do
        timed gapbs "$g/sssp" -f "$graph" -s -n 1 -r 0 -d 2
        sed -n 's/^Trial Time: *\([0-9.]*\).*/\1/p' "$work/last.out" >> "$work/t.gapbs.c"
        for p in "${plans[@]}"; do
            timed "$p" "$bin/ember-sssp" --input "$graph" --format el --undirected --source 0 \
                --plan "$p" --threads "$THREADS" --output "$work/$p.csv" \
                --metrics "$work/m.jsonl" --quiet
            sed -n 's/.*"compute_seconds": \([0-9.e-]*\).*/\1/p' "$work/m.jsonl" |
                tail -1 >> "$work/t.$p.c"
        done
    done
    load1=$(cut -d' ' -f1-3 /proc/loadavg)
    same=yes
    for p in push pull; do cmp -s "$work/delta.csv" "$work/$p.csv" || same=NO; done
    echo "SSSP, $shape ($(grep -c . "$graph") input edges, undirected), $THREADS threads," \
        "medians of $RUNS interleaved runs; load average $load0 before, $load1 after"
    gw=$(median < "$work/t.gapbs") gc=$(median < "$work/t.gapbs.c")
    printf "  %-22s whole %.3f s   compute %.3f s\n" "GAPBS sssp -d2" "$gw" "$gc"
    for p in "${plans[@]}"; do
        w=$(median < "$work/t.$p") c=$(median < "$work/t.$p.c")
        awk -v p="$p" -v w="$w" -v c="$c" -v gw="$gw" -v gc="$gc" -v shape="$shape" \
            -v sum="${BENCH_SUMMARY:-}" 'BEGIN {
            printf "  %-22s whole %.3f s (%.2fx)   compute %.3f s (%.2fx)\n", \
                "ember-sssp --plan " p, w, w / gw, c, c / gc
            if (sum != "" && p == "delta")
                printf "SSSP %s, ember --plan delta vs GAPBS sssp, whole process | %.2fx | (none)\n", \
                    shape, w / gw >> sum
        }'
    done
    echo "  every plan wrote the same distances: $same"
done
