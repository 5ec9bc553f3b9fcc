#!/usr/bin/env bash
# Connected components: ember-cc (its default FastSV plan and --plan
# afforest) against GAPBS `cc` (Afforest) and `cc_sv` (Shiloach-Vishkin),
# whole processes timed from start to exit,
# THREADS threads, in one run, on two undirected graphs:
#   - GAPBS's Kronecker graph (converter -g SCALE -k 16, default scale 20:
#     a small diameter, one giant component and many isolated vertices);
#   - a GRID x GRID grid (default 1000: 10^6 vertices, diameter 2 GRID - 2),
#     the shape of a road network or a mesh, where plain min-label
#     propagation needs one iteration an edge of the diameter.
# ember reads an HDF5 file made by `ember-convert --undirected` (stored
# both ways, so its load reads the stored layout), GAPBS its .sg made by
# its converter from the same edge list. ember's component count is
# checked against GAPBS's, and afforest's labels against FastSV's. Runs
# are interleaved; medians of RUNS runs.
# No goal (issue 11 is silent on components); printed, never asserted.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${EMBER_BUILD:-$here/../build}
bin=${EMBER_BIN:-$build/bin}
SCALE=${SCALE:-20} GRID=${GRID:-1000} RUNS=${RUNS:-3} THREADS=${THREADS:-2}
export OMP_NUM_THREADS=$THREADS
. "$here/gapbs_setup.sh"
gapbs_setup cc cc cc_sv converter
"$g/converter" -g"$SCALE" -k16 -e "$work/kron.el" > /dev/null
awk -v w="$GRID" 'BEGIN { for (r = 0; r < w; r++) for (c = 0; c < w; c++) {
    v = r * w + c; if (c + 1 < w) print v, v + 1; if (r + 1 < w) print v, v + w } }' \
    > "$work/grid.el"
for x in kron grid; do
    "$g/converter" -f "$work/$x.el" -s -b "$work/$x.sg" > /dev/null
    "$bin/ember-convert" "$work/$x.el" "$work/$x.h5" --undirected --threads "$THREADS" \
        2> /dev/null
done
sleep 2.1 # the .h5 files read in place only once 2 s old (docs/design.md)

timed() { # timed OUT CMD...: CMD's wall seconds appended to $work/OUT
    local out=$1 t0 t1
    shift
    t0=$(now)
    "$@" > "$work/last.out" 2> "$work/last.err"
    t1=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", b - a }' >> "$work/$out"
}
for x in kron grid; do # GAPBS's count, untimed (-a adds its analysis)
    : > "$work/$x.ember"; : > "$work/$x.af"; : > "$work/$x.cc"; : > "$work/$x.sv"
    "$g/cc" -f "$work/$x.sg" -n 1 -a |
        sed -n 's/^There are \([0-9]*\) components.*/\1/p' > "$work/$x.cc.res"
done
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for _ in $(seq "$RUNS"); do
    for x in kron grid; do
        timed "$x.ember" "$bin/ember-cc" --input "$work/$x.h5" --threads "$THREADS" \
            --output "$work/$x.out.csv"
        sed -n 's/.*; \([0-9]*\) components after \([0-9]*\) iterations.*/\1 \2/p' \
            "$work/last.out" > "$work/$x.ember.res"
        timed "$x.af" "$bin/ember-cc" --input "$work/$x.h5" --threads "$THREADS" \
            --plan afforest --output "$work/$x.af.csv"
        timed "$x.cc" "$g/cc" -f "$work/$x.sg" -n 1
        timed "$x.sv" "$g/cc_sv" -f "$work/$x.sg" -n 1
    done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
echo "connected components, $THREADS threads, whole processes, medians of $RUNS interleaved runs;"
echo "load average $load0 before, $load1 after"
for x in kron grid; do
    read -r comps iters < "$work/$x.ember.res"
    gc=$(cat "$work/$x.cc.res")
    [ -z "$gc" ] || [ "$gc" = "$comps" ] ||
        echo "  $x: ember finds $comps components, GAPBS cc $gc" >&2
    e=$(median < "$work/$x.ember") c=$(median < "$work/$x.cc") s=$(median < "$work/$x.sv")
    a=$(median < "$work/$x.af")
    same=yes
    cmp -s "$work/$x.out.csv" "$work/$x.af.csv" || same=NO
    case $x in
    kron) what="Kronecker scale $SCALE" ;;
    *) what="grid ${GRID}x$GRID" ;;
    esac
    awk -v w="$what" -v e="$e" -v a="$a" -v c="$c" -v s="$s" -v k="$comps" -v i="$iters" \
        -v same="$same" -v sum="${BENCH_SUMMARY:-}" 'BEGIN {
        printf "  %s: %s components; GAPBS cc %.3f s, cc_sv %.3f s\n", w, k, c, s
        printf "    ember-cc (FastSV, %s iterations) %.3f s (%.2fx cc, %.2fx cc_sv)\n", i, e, e / c, e / s
        printf "    ember-cc --plan afforest          %.3f s (%.2fx cc, %.2fx cc_sv); the same labels: %s\n", a, a / c, a / s, same
        if (sum != "")
            printf "CC %s whole process, --plan afforest vs GAPBS cc | %.2fx | none\n", w, a / c >> sum }'
done
