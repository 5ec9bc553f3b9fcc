#!/usr/bin/env bash
# ember-kmeans on data/iris.csv with --verify: k = 3 from every
# initialisation, an --init file, a run stopped by --iterations before it
# converged, and k = n and k = n - 1 (iris has one repeated row, so a
# cluster stays empty and the empty-cluster rule runs). Checks the known
# optimum of k = 3 (inertia 78.851441426...) and the output file's shape.
set -euo pipefail
: "${EMBER_BIN:?}" "${EMBER_SRC:?}"
export LC_ALL=C
km=$EMBER_BIN/ember-kmeans
iris=$EMBER_SRC/data/iris.csv
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-kmeans-iris.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_kmeans_iris: FAIL: $*" >&2; exit 1; }

run() { # run NAME ARGS...: must exit 0 and print Verification: PASS
  local name=$1; shift
  "$km" --input "$iris" --quiet --verify "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" \
    || { cat "$tmp/$name.out" "$tmp/$name.err"; fail "$name: exit status $?"; }
  grep -q '^Verification: PASS$' "$tmp/$name.out" || { cat "$tmp/$name.out"; fail "$name: no PASS"; }
  ! grep -q 'FAIL' "$tmp/$name.out" || fail "$name: a check failed"
}

run k3 --k 3 --output "$tmp/k3.h5"
grep -q '^inertia: 78\.85144142614' "$tmp/k3.out" || { cat "$tmp/k3.out"; fail "k=3 inertia is not 78.85144142614..."; }
grep -q '^converged: yes$' "$tmp/k3.out" || fail "k=3 did not converge"
for seed in 1 2 3; do
  run "random$seed" --k 3 --init random --seed "$seed"
  run "pp$seed" --k 3 --init kmeans++ --seed "$seed"
done

# Output layout: /centroids 3 x 4 float64, /labels 150 int64, attributes.
if command -v h5dump >/dev/null; then
  h5dump -H "$tmp/k3.h5" >"$tmp/k3.dump"
  grep -A2 'DATASET "centroids"' "$tmp/k3.dump" | grep -q 'H5T_IEEE_F64LE' || fail "/centroids is not float64"
  grep -A3 'DATASET "centroids"' "$tmp/k3.dump" | grep -q '( 3, 4 )' || fail "/centroids is not 3 x 4"
  grep -A3 'DATASET "labels"' "$tmp/k3.dump" | grep -q '( 150 )' || fail "/labels is not 150 long"
  for a in inertia iterations converged; do
    grep -q "ATTRIBUTE \"$a\"" "$tmp/k3.dump" || fail "no attribute $a"
  done
fi

# Three rows of iris as the initial centroids; --k may be left out.
sed -n '2p;60p;120p' "$iris" >"$tmp/init.csv"
run file --init "$tmp/init.csv"
grep -q '^k: 3$' "$tmp/file.out" || fail "--init FILE did not give k = 3"
# The centroids file a run writes starts the next run where it ended: one
# iteration, no centroid moves, the same file again.
run again1 --k 3 --output "$tmp/c1.csv"
run again2 --init "$tmp/c1.centroids.csv" --output "$tmp/c2.csv"
grep -q '^iterations: 1$' "$tmp/again2.out" || { cat "$tmp/again2.out"; fail "--init X.centroids.csv did not start at the end"; }
cmp -s "$tmp/c1.centroids.csv" "$tmp/c2.centroids.csv" || fail "--init X.centroids.csv: other centroids"
# Also past the columns a CSV type names (d = 40): the header is read
awk 'BEGIN { srand(3); for (i = 0; i < 200; i++) { for (j = 0; j < 40; j++)
  printf "%s%.6f", (j ? "," : ""), (i % 3) * 5 + rand(); print "" } }' >"$tmp/d40.csv"
"$km" --input "$tmp/d40.csv" --k 3 --quiet --output "$tmp/w1.csv" >/dev/null || fail "d40 run"
"$km" --input "$tmp/d40.csv" --init "$tmp/w1.centroids.csv" --quiet --output "$tmp/w2.csv" \
  >"$tmp/w2.out" || fail "d40: --init X.centroids.csv refused"
cmp -s "$tmp/w1.centroids.csv" "$tmp/w2.centroids.csv" || fail "d40: --init X.centroids.csv: other centroids"
# Its rows out of order: refused (a label column is not taken for a coordinate)
for l in 1 3 2 4; do sed -n "${l}p" "$tmp/c1.centroids.csv"; done >"$tmp/swapped.csv"
set +e
"$km" --input "$iris" --init "$tmp/swapped.csv" --quiet >/dev/null 2>"$tmp/swapped.err"
st=$?
set -e
[ "$st" = 2 ] && grep -q "row 1 is labelled 1, not 0" "$tmp/swapped.err" \
  || { cat "$tmp/swapped.err"; fail "a centroids file with rows out of order: exit $st"; }
# A centroids file of other points (3 coordinates for iris' 4): its label
# column is not taken for a fourth coordinate
cut -d, -f1-4 "$tmp/c1.centroids.csv" >"$tmp/narrow.csv"
set +e
"$km" --input "$iris" --init "$tmp/narrow.csv" --quiet >/dev/null 2>"$tmp/narrow.err"
st=$?
set -e
[ "$st" = 2 ] && grep -q "rows of 3 coordinates after the label, but the points have 4" \
  "$tmp/narrow.err" || { cat "$tmp/narrow.err"; fail "a narrower centroids file: exit $st"; }

# Stopped before convergence: the verifier checks the last update.
run short --k 3 --init random --seed 9 --iterations 1 --tolerance 0
grep -q 'stopped by --iterations' "$tmp/short.out" || { cat "$tmp/short.out"; fail "short run not reported as stopped by --iterations"; }
run zero --k 3 --iterations 0
grep -q 'no iteration ran: 3 of 3 centroids are points of the input' "$tmp/zero.out" \
  || fail "--iterations 0 not reported"
# ... whose centroids are the initial ones (they were all zeros)
run zeroinit --iterations 0 --init "$tmp/c1.centroids.csv" --output "$tmp/z.csv"
cmp -s "$tmp/z.centroids.csv" "$tmp/c1.centroids.csv" || fail "--iterations 0: not --init's centroids"

# k = n: one cluster stays empty (two iris rows are equal) and takes the
# farthest point; k = n - 1 and a tight tolerance.
run all --k 150 --init random --seed 4
run allpp --k 149 --tolerance 1e-9
echo "test_kmeans_iris: PASS"
