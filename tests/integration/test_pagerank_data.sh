#!/usr/bin/env bash
# ember-pagerank on the bundled graphs (data/karate.el, data/dangling.el):
# --verify passes; the ranks match a naive serial PageRank written here in
# awk (no python needed), and networkx's published karate values; the same
# ranks for any thread count, and from every input format (edge list,
# Matrix Market, HDF5 CSR, relabelled ids).
set -euo pipefail
bin=${EMBER_BIN:?}
src=${EMBER_SRC:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

# A naive PageRank: edges deduplicated, dangling rank spread uniformly.
cat > naive.awk <<'AWK'
BEGIN { m = 0; n = 0 }
/^[#%]/ || NF < 2 { next }
{
    u = $1 + 0; v = $2 + 0
    add(u, v)
    if (undirected) add(v, u)
    if (u + 1 > n) n = u + 1
    if (v + 1 > n) n = v + 1
}
function add(a, b) {
    if ((a " " b) in seen) return
    seen[a " " b] = 1; src[m] = a; dst[m] = b; m++
}
END {
    for (i = 0; i < m; i++) outd[src[i]]++
    for (v = 0; v < n; v++) r[v] = 1 / n
    for (it = 0; it < iters; it++) {
        dang = 0
        for (v = 0; v < n; v++) if (!outd[v]) dang += r[v]
        for (v = 0; v < n; v++) nr[v] = (1 - d) / n + d * dang / n
        for (i = 0; i < m; i++) nr[dst[i]] += d * r[src[i]] / outd[src[i]]
        for (v = 0; v < n; v++) r[v] = nr[v]
    }
    print "vertex,rank"
    for (v = 0; v < n; v++) printf "%d,%.17g\n", v, r[v]
}
AWK

# max |a - b| over the rank columns of two vertex,rank files
maxdiff() {
    paste -d, "$1" "$2" | awk -F, 'NR > 1 { if ($1 != $3) { print "ids differ"; exit }
        x = $2 - $4; if (x < 0) x = -x; if (x > m) m = x } END { printf "%.3g\n", m }'
}

check_graph() {
    local file=$1 undirected=$2 flag=""
    [ "$undirected" = 1 ] && flag=--undirected
    "$bin/ember-pagerank" --input "$file" $flag --verify --quiet --output ember.csv \
        --tolerance 0 --iterations 100 > verify.txt || fail "$file: --verify failed: $(cat verify.txt)"
    grep -q "Verification: PASS" verify.txt || fail "$file: no PASS line"
    awk -v d=0.85 -v iters=100 -v undirected="$undirected" -f naive.awk "$file" > naive.csv
    local diff
    diff=$(maxdiff ember.csv naive.csv)
    awk -v x="$diff" 'BEGIN { exit !(x != "ids differ" && x + 0 < 1e-13) }' ||
        fail "$file: ember and the naive PageRank differ by $diff"
    # the ranks sum to 1
    awk -F, 'NR > 1 { s += $2 } END { exit !(s > 1 - 1e-12 && s < 1 + 1e-12) }' ember.csv ||
        fail "$file: the ranks do not sum to 1"
    # bit-identical for any thread count, with and without renumbering
    for t in 1 3; do
        "$bin/ember-pagerank" --input "$file" $flag --quiet --output t$t.csv \
            --tolerance 0 --iterations 100 --threads $t
        cmp ember.csv t$t.csv || fail "$file: ranks differ with $t threads"
    done
    "$bin/ember-pagerank" --input "$file" $flag --quiet --output none.csv --order none \
        --tolerance 0 --iterations 100
    diff=$(maxdiff ember.csv none.csv)
    awk -v x="$diff" 'BEGIN { exit !(x + 0 < 1e-15) }' || fail "$file: --order none differs by $diff"
}

check_graph "$src/data/karate.el" 1
check_graph "$src/data/dangling.el" 0

# networkx 2.x, nx.pagerank(nx.karate_club_graph()) (unweighted, tol 1e-6)
"$bin/ember-pagerank" --input "$src/data/karate.el" --undirected --quiet --output k.csv \
    --tolerance 1e-12
for pair in 0:0.09700181758983709 33:0.1009179167487121 32:0.07169213006588289 \
            2:0.057078423047636745 11:0.009564916863537148; do
    v=${pair%%:*} want=${pair#*:}
    awk -F, -v v="$v" -v w="$want" 'NR > 1 && $1 == v { x = $2 - w; if (x < 0) x = -x
        found = 1; exit !(x < 2e-5) } END { if (!found) exit 1 }' k.csv ||
        fail "karate vertex $v: expected about $want (networkx)"
done

# --top lists vertex 33 first, then 0
"$bin/ember-pagerank" --input "$src/data/karate.el" --undirected --quiet --top 3 > top.txt
awk 'NR == 2 { exit !($2 == 33) }' top.txt || fail "--top: $(cat top.txt)"
awk 'NR == 3 { exit !($2 == 0) }' top.txt || fail "--top: $(cat top.txt)"
# ids wider than the column (--relabel keeps 64-bit ids) widen it: the
# ranks stay aligned under their heading
printf '10000000000000 2\n2 3\n3 10000000000000\n' > wide.el
"$bin/ember-pagerank" --input wide.el --relabel --quiet --top 3 > top.txt
awk 'NR <= 4 { p = index($0, ($1 == "rank") ? "pagerank" : "0.33"); if (!at) at = p; if (p != at) exit 1 }' \
  top.txt || fail "--top columns not aligned: $(cat top.txt)"

# The same graph as Matrix Market, as HDF5 CSR, and with sparse ids.
{
    echo "%%MatrixMarket matrix coordinate pattern general"
    echo "% dangling.el, 1-based"
    grep -v '^#' "$src/data/dangling.el" | awk 'NF >= 2 { n++ } END { print 8, 8, n }'
    grep -v '^#' "$src/data/dangling.el" | awk 'NF >= 2 { print $1 + 1, $2 + 1 }'
} > dangling.mtx
"$bin/ember-convert" "$src/data/dangling.el" dangling.h5 --quiet
grep -v '^#' "$src/data/dangling.el" | awk 'NF >= 2 { print $1 * 1000 + 7, $2 * 1000 + 7 }' > sparse.el
"$bin/ember-pagerank" --input "$src/data/dangling.el" --quiet --output ref.csv --tolerance 0 --iterations 60
for f in dangling.mtx dangling.h5; do
    "$bin/ember-pagerank" --input "$f" --quiet --output f.csv --tolerance 0 --iterations 60
    cmp ref.csv f.csv || fail "$f gives other ranks than the edge list"
done
"$bin/ember-pagerank" --input sparse.el --relabel --quiet --output s.csv --tolerance 0 --iterations 60
awk -F, 'NR > 1 { print ($1 - 7) / 1000 "," $2 } NR == 1' s.csv > s2.csv
cmp ref.csv s2.csv || fail "--relabel gives other ranks"

# HDF5 output: /ranks with its attributes
"$bin/ember-pagerank" --input "$src/data/dangling.el" --quiet --output r.h5 --tolerance 0 --iterations 7
if command -v h5dump > /dev/null; then
    { h5dump -A r.h5 > h5.txt; grep -q 'ATTRIBUTE "iterations"' h5.txt; } || fail "no iterations attribute"
    { h5dump -a /ranks/iterations r.h5 > h5.txt; grep -q "(0): 7" h5.txt; } || fail "iterations attribute is not 7"
    { h5dump -A r.h5 > h5.txt; grep -q 'ATTRIBUTE "residual"' h5.txt; } || fail "no residual attribute"
    { h5dump -d /ranks r.h5 > h5.txt; grep -q "DATASPACE  SIMPLE { ( 8 ) / ( 8 ) }" h5.txt; } || fail "/ranks is not 8 long"
fi
echo PASS
