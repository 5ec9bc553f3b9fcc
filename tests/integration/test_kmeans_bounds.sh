#!/usr/bin/env bash
# The bounds of ember-kmeans (Hamerly's, with margins for rounding) skip
# distances but never change a label: on adversarial data, the output file
# is byte for byte that of plain Lloyd (EMBER_KMEANS_BOUNDS=0, every point
# scanned against every centroid in every pass), with every kernel
# (EMBER_KMEANS_ISA) and 1 or 2 threads. The data: exact ties (points
# halfway between centroids on an integer lattice), duplicates with k
# larger than the number of distinct points, far outliers beyond the
# bounds' cap (2^500) whose squared distances come near the largest double,
# coordinates whose squares underflow, mixed
# magnitudes, uniform points that move a lot over many iterations, and
# dimensions 1, 3, 8, 16, 64, 300 and 520 (the AVX-512 move kernel takes
# multiples of 8; past 256 the full kernel's tile is on the heap).
# Also checks that the bounds do skip work on clustered data (the shares of
# full scans and of points read that the program reports, not a time).
set -euo pipefail
export SOURCE_DATE_EPOCH=1700000000
: "${EMBER_BIN:?}"
export LC_ALL=C
km=$EMBER_BIN/ember-kmeans
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-kmeans-bounds.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_kmeans_bounds: FAIL: $*" >&2; exit 1; }

# gen NAME D N AWK-EXPR: N rows of D columns, each value the expression of
# i (row), j (column) and r (a uniform draw); fixed seed.
gen() {
  awk -v d="$2" -v n="$3" 'BEGIN { srand(17);
    for (j = 0; j < d; j++) printf "%sx%d", (j ? "," : ""), j; print "";
    for (i = 0; i < n; i++) { for (j = 0; j < d; j++) { r = rand();
      printf "%s%.17g", (j ? "," : ""), '"$4"' } print "" } }' >"$tmp/$1.csv"
}
# Integer lattice: many exact ties and duplicates.
gen lattice3 3 3000 'int(r * 5)'
gen lattice16 16 2000 'int(r * 3) * 2'
# Five distinct points, repeated; k = 9 leaves clusters empty.
gen dup8 8 1000 '(i % 5) * 1.5 + j'
# Clusters with far outliers: every 97th point is about 4e151 away (past
# the bounds' cap), its squared distances about 1e303. At 1e160 they
# would overflow to +inf, which the program refuses (exit 2): every label
# would tie at +inf.
gen far16 16 3000 '(i % 97 == 0 ? 1e150 * (j + 1) : (i % 7) * 10 + r)'
gen over16 16 3000 '(i % 97 == 0 ? 1e160 * (j + 1) : (i % 7) * 10 + r)'
# Tiny coordinates: the squares between clusters are subnormal, those
# within them underflow below the smallest subnormal. (Data whose largest
# magnitude is below about 7e-155, every square subnormal, is refused:
# test_kmeans_badinput.)
gen tiny3 3 2000 '(i % 4) * 1e-154 + r * 1e-171'
# Mixed magnitudes in one set.
gen mixed8 8 3000 '(i % 3 == 0 ? 1e-150 : (i % 3 == 1 ? 1 : 1e120)) * ((i % 11) + r)'
# Uniform points: centroids move a lot, then slowly, for many iterations.
gen uniform1 1 5000 'r'
gen uniform16 16 4000 'r'
# Well separated clusters: the bounds must skip most scans.
gen blobs16 16 20000 '(i % 8) * 100 + j * ((i % 8) % 3) + r'
# Wide points and many centroids: k x d = 5120 sums, more than the AVX-512
# fold keeps in its own copy (it adds in place then).
gen wide64 64 3000 '(i % 11) * 3 + j * 0.01 + r'
# Wider than the full kernel's tile on the stack (256 coordinates with
# AVX-512, 512 with AVX2): d = 300 (not a multiple of 8, so the own
# kernel's masked last coordinates) and 520.
gen wide300 300 800 '(i % 7) * 2 + ((i * 31 + j * 17) % 13) * 0.1 + r'
gen wide520 520 500 '(i % 5) * 3 + (j % 9) * 0.05 + r'

run() { # run OUT [env...] -- ARGS...
  local out=$1; shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  env "${envs[@]}" "$km" "$@" --tolerance 0 --quiet --output "$out" \
    >"$out.stdout" 2>"$out.stderr" || { cat "$out.stderr"; fail "ember-kmeans $*"; }
}

check() { # check NAME ARGS...: all variants equal plain Lloyd
  local name=$1; shift
  local ref=$tmp/$name-ref.h5
  run "$ref" EMBER_KMEANS_BOUNDS=0 EMBER_KMEANS_ISA=serial -- \
    --input "$tmp/$name.csv" --threads 1 "$@"
  for isa in serial avx2 avx512; do
    for t in 1 2; do
      local out=$tmp/$name-$isa-$t.h5
      run "$out" EMBER_KMEANS_ISA=$isa -- --input "$tmp/$name.csv" --threads "$t" "$@"
      cmp -s "$ref" "$out" || fail "$name ($*): kernel $isa, $t threads, with bounds differs from plain Lloyd"
      cmp -s "$ref.stdout" "$out.stdout" || fail "$name: stdout differs (kernel $isa, $t threads)"
      rm -f "$out"
    done
  done
}

check lattice3 --k 7 --init random --seed 1 --iterations 60
check lattice3 --k 12 --init kmeans++ --seed 2 --iterations 60
check lattice16 --k 10 --init random --seed 3 --iterations 40
check dup8 --k 9 --init random --seed 4 --iterations 30
check far16 --k 9 --init kmeans++ --seed 5 --iterations 40
check far16 --k 6 --init random --seed 6 --iterations 40
for b in 0 1; do
  set +e
  EMBER_KMEANS_BOUNDS=$b "$km" --input "$tmp/over16.csv" --k 6 --init random --seed 6 \
    --quiet >/dev/null 2>"$tmp/over.err"
  st=$?
  set -e
  [ "$st" = 2 ] && grep -q "squared distances overflow" "$tmp/over.err" \
    || fail "overflowing distances (bounds $b): exit $st: $(cat "$tmp/over.err")"
done
check tiny3 --k 5 --init random --seed 7 --iterations 30
check mixed8 --k 8 --init kmeans++ --seed 8 --iterations 40
check uniform1 --k 13 --init random --seed 9 --iterations 200
check uniform16 --k 20 --init random --seed 10 --iterations 100
check blobs16 --k 8 --init random --seed 11 --iterations 50
check wide64 --k 80 --init random --seed 13 --iterations 12
check wide300 --k 9 --init kmeans++ --seed 14 --iterations 30
check wide520 --k 7 --init random --seed 15 --iterations 30

# On clustered data most assignments keep their label by the bounds (the
# first pass scans everything). k = 12 for 8 clusters keeps centroids
# moving for all 40 iterations; the share is a count, not a time.
args=(--input "$tmp/blobs16.csv" --k 12 --init random --seed 12 --iterations 40
      --tolerance 0 --threads 2)
"$km" "${args[@]}" >"$tmp/count.out" 2>"$tmp/count.err" || fail "blobs16 count run"
grep -q '^iterations: 40$' "$tmp/count.out" || { cat "$tmp/count.out"; fail "blobs16 k 12 stopped early"; }
pct=$(sed -n 's/^ember-kmeans: \([0-9.]*\)% of the points.*/\1/p' "$tmp/count.err")
[ -n "$pct" ] || { cat "$tmp/count.err"; fail "no share of full scans reported"; }
awk -v p="$pct" 'BEGIN { exit !(p < 25) }' || fail "$pct% of the assignments scanned every centroid (expected < 25%)"
# and most points are not even read: their upper and lower bounds keep the
# label (19 % read here, counting the first pass, which reads all)
rd=$(sed -n 's/^ember-kmeans: .* and \([0-9.]*\)% read the point.*/\1/p' "$tmp/count.err")
[ -n "$rd" ] || { cat "$tmp/count.err"; fail "no share of points read reported"; }
awk -v p="$rd" 'BEGIN { exit !(p < 35) }' || fail "$rd% of the assignments read the point (expected < 35%)"
EMBER_KMEANS_BOUNDS=0 "$km" "${args[@]}" >/dev/null 2>"$tmp/count0.err" || fail "plain run"
grep -q '^ember-kmeans: 100.0% of the points.* and 100.0% read' "$tmp/count0.err" \
  || { cat "$tmp/count0.err"; fail "EMBER_KMEANS_BOUNDS=0 did not scan every point"; }
echo "test_kmeans_bounds: PASS"
