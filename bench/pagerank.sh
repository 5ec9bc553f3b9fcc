#!/usr/bin/env bash
# PageRank (issue 4): ember-pagerank against plain pull-based OpenMP CSR
# loops (bench/pagerank_baseline.c), all measured in this run, 2 threads,
# Kronecker scale SCALE (default 20), edge factor 16, 20 iterations,
# tolerance 0. Runs are interleaved (A B C A B C ...) so load from other
# processes hits every contender alike; medians of RUNS runs.
#
# Two graphs: the R-MAT edges as directed edges, and symmetrized
# (--undirected, about twice the edges: GAPBS's kron, the graph of the
# issue's reference figures). Reports, for each:
#   - compute seconds (iterations only, loading excluded) of
#       plain    textbook pull loop: r[u] / outdeg[u] per edge
#       contrib  the same with contributions precomputed (GAPBS pr_spmv's
#                loop, float64)
#       ember    ember-pagerank (degree order, the dataset model, loop)
#       ember-none  ember-pagerank --order none (no renumbering)
#     and ember's ratio to each (the goal: ember <= 0.7 x plain);
#   - ember-pagerank's peak RSS against CSR bytes + 3 rank vectors (the
#     goal: within 1.3x), from the HDF5 CSR input;
#   - edge-list read throughput (the goal: >= 150 MB/s with 2 threads);
#   - networkx, at scale NX_SCALE (default 16), when python3 has networkx
#     and scipy (apt-get install python3-networkx python3-scipy).
# Benchmarks are never ctest assertions: this prints, it does not judge.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${EMBER_BUILD:-$here/../build}
bin=${EMBER_BIN:-$build/bin}
SCALE=${SCALE:-20} EF=${EF:-16} ITERS=${ITERS:-20} RUNS=${RUNS:-5}
NX_SCALE=${NX_SCALE:-16}
THREADS=${THREADS:-2}
export OMP_NUM_THREADS=$THREADS
work=${BENCH_DIR:-$(mktemp -d)}
[ -n "${BENCH_DIR:-}" ] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"

gcc -O3 ${BENCH_CFLAGS:-} -fopenmp -I"$here/../include" "$here/pagerank_baseline.c" -L"$build/lib" -lember \
    -Wl,-rpath,"$build/lib" -lm -o "$work/baseline"

graph=$work/kron$SCALE.h5
text=$work/kron$SCALE.el
[ -f "$graph" ] || "$bin/ember-gen" kron --scale "$SCALE" --edge-factor "$EF" --seed 1 \
    --output "$graph" --quiet
[ -f "$text" ] || "$bin/ember-gen" kron --scale "$SCALE" --edge-factor "$EF" --seed 1 \
    --output "$text" --quiet

median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# bench GRAPHS_FLAG: one mode (directed, or --undirected as GAPBS's kron)
bench() {
    local uflag=$1 bflag=""
    [ -n "$uflag" ] && bflag=undirected
    : > "$work/plain" ; : > "$work/contrib" ; : > "$work/ember" ; : > "$work/none"
    : > "$work/rss"
    for _ in $(seq "$RUNS"); do
        "$work/baseline" "$graph" "$ITERS" plain $bflag |
            awk '/kernel_seconds/ { print $2 }' >> "$work/plain"
        "$work/baseline" "$graph" "$ITERS" contrib $bflag |
            awk '/kernel_seconds/ { print $2 }' >> "$work/contrib"
        /usr/bin/time -f "%M" -o "$work/t" "$bin/ember-pagerank" --input "$graph" $uflag \
            --iterations "$ITERS" --tolerance 0 --threads "$THREADS" --output "$work/r.h5" \
            --quiet --metrics "$work/m.jsonl"
        sed -n 's/.*"compute_seconds": \([0-9.e-]*\).*/\1/p' "$work/m.jsonl" >> "$work/ember"
        cat "$work/t" >> "$work/rss"
        "$bin/ember-pagerank" --input "$graph" $uflag --iterations "$ITERS" --tolerance 0 \
            --threads "$THREADS" --output "$work/r.h5" --quiet --metrics "$work/m.jsonl" \
            --order none
        sed -n 's/.*"compute_seconds": \([0-9.e-]*\).*/\1/p' "$work/m.jsonl" >> "$work/none"
    done
    local plain contrib ember none rss n m base
    plain=$(median < "$work/plain") contrib=$(median < "$work/contrib")
    ember=$(median < "$work/ember") none=$(median < "$work/none")
    rss=$(median < "$work/rss")
    # CSR bytes + 3 rank vectors, from the graph's n and m (the result line,
    # on stdout: "N vertices, M edges" or, undirected, "M directed edges")
    "$bin/ember-pagerank" --input "$graph" $uflag --iterations 0 --output "$work/r.h5" \
        > "$work/sum.txt" 2>&1
    read -r n m < <(sed -n 's/^ember-pagerank: \([0-9]*\) vertices, \([0-9]*\) \(directed \)\{0,1\}edges.*/\1 \2/p' \
        "$work/sum.txt")
    base=$(( (n + 1) * 8 + m * 4 + 3 * n * 8 ))
    echo "PageRank${uflag:+ $uflag}, Kronecker scale $SCALE edge factor $EF ($n vertices, $m edges stored),"
    echo "$ITERS iterations, tolerance 0, $THREADS threads, medians of $RUNS interleaved runs (compute only):"
    awk -v p="$plain" -v c="$contrib" -v e="$ember" -v z="$none" -v sc="$SCALE" \
        -v u="${uflag:+ $uflag}" -v sum="${BENCH_SUMMARY:-}" 'BEGIN {
        printf "  plain pull loop (baseline)     %8.3f s\n", p
        printf "  precomputed contributions      %8.3f s\n", c
        printf "  ember-pagerank                 %8.3f s   %.2f x plain, %.2f x contrib\n", e, e / p, e / c
        printf "  ember-pagerank --order none    %8.3f s   %.2f x plain\n", z, z / p
        if (sum != "")
            printf "PageRank s%d%s compute vs the plain pull loop | %.2fx | <= 0.7x\n", sc, u, e / p >> sum
    }'
    awk -v r="$rss" -v b="$base" 'BEGIN {
        printf "  peak RSS %.1f MiB = %.2f x (CSR + 3 rank vectors = %.1f MiB)\n",
            r / 1024, r * 1024 / b, b / 1048576 }'
}

echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
bench --undirected
bench ""

# edge-list read throughput: parsing alone, and parsing + building the CSR
# (ember-convert reports both times)
: > "$work/mbs" ; : > "$work/mbs_all"
for _ in $(seq 3); do
    "$bin/ember-convert" "$text" "$work/c.h5" --threads "$THREADS" 2> "$work/conv.txt"
    sed -n 's/.*read \([0-9.]*\) MB in \([0-9.]*\) s.*built in \([0-9.]*\) s.*/\1 \2 \3/p' \
        "$work/conv.txt" > "$work/conv"
    awk '{ printf "%.0f\n", $1 / $2 }' "$work/conv" >> "$work/mbs"
    awk '{ printf "%.0f\n", $1 / ($2 + $3) }' "$work/conv" >> "$work/mbs_all"
done
echo "Edge-list input ($(du -m "$text" | cut -f1) MB, $THREADS threads, median of 3):"
echo "  parsing $(median < "$work/mbs") MB/s; parsing + building the CSR $(median < "$work/mbs_all") MB/s"

if /usr/bin/python3 -c "import networkx, scipy" 2> /dev/null; then
    nxg=$work/kron$NX_SCALE.el
    [ -f "$nxg" ] || "$bin/ember-gen" kron --scale "$NX_SCALE" --edge-factor "$EF" --seed 1 \
        --output "$nxg" --quiet
    "$bin/ember-pagerank" --input "$nxg" --iterations "$ITERS" --tolerance 0 \
        --threads "$THREADS" --output "$work/nx_ember.csv" --quiet --metrics "$work/m.jsonl"
    e=$(sed -n 's/.*"compute_seconds": \([0-9.e-]*\).*/\1/p' "$work/m.jsonl")
    /usr/bin/python3 - "$nxg" "$ITERS" "$e" <<'PY'
import sys, time, networkx as nx
path, iters, ember = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
G = nx.DiGraph()
with open(path) as f:
    G.add_edges_from(tuple(map(int, l.split()[:2])) for l in f if l[0] != '#')
n = max(G.nodes) + 1
G.add_nodes_from(range(n))
t = time.perf_counter()
try:
    nx.pagerank(G, alpha=0.85, max_iter=iters, tol=0.0)
except nx.PowerIterationFailedConvergence:
    pass  # tol 0 never converges: the time is that of max_iter iterations
secs = time.perf_counter() - t
print("  networkx %s pagerank (scale %s, %d iterations): %.3f s; ember %.3f s (%.1fx faster)"
      % (nx.__version__, path.split('kron')[-1].split('.')[0], iters, secs, ember, secs / ember))
PY
else
    echo "  networkx: not installed (apt-get install python3-networkx python3-scipy)"
fi
