# Sourced by the benchmarks against GAPBS (gapbs.sh, cc.sh, sssp_gapbs.sh),
# after they set $here and $THREADS:
#   gapbs_setup NAME TARGET...  makes $work (a temporary directory, removed
#     on exit) and builds GAPBS's TARGETs in $work/gapbs ($g) from
#     ../shared/peers/gapbs or $GAPBS_SRC, never in this tree;
#   now, median: the time in seconds; the median of numbers, one a line.
gapbs_setup() {
    local name=$1 src=${GAPBS_SRC:-$here/../../shared/peers/gapbs}
    shift
    [ -d "$src" ] || src=/work/shared/peers/gapbs
    work=$(mktemp -d "${BENCH_DIR:-/tmp}/ember-$name.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    [ -d "$src" ] || { echo "$name: no GAPBS at $src (set GAPBS_SRC)" >&2; exit 1; }
    cp -r "$src" "$work/gapbs"
    make -C "$work/gapbs" -j"$THREADS" "$@" > "$work/make.log" 2>&1 ||
        { cat "$work/make.log" >&2; exit 1; }
    g=$work/gapbs
}
now() { date +%s.%N; }
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
