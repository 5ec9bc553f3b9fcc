#!/usr/bin/env bash
# ember-kmeans' centroids are means of exact integer sums (the "exact sums"
# definition in algorithms/ember-kmeans.c and docs/formats.md), so:
# - the output is the same bytes for any --partitions and thread count
#   (with floating-point sums the partitions decided the summation order);
# - each converged centroid is, bit for bit, the value an independent
#   implementation of the definition gives from the input and the labels
#   (Python fractions, here: the exact mean rounded once). The first data
#   set mixes magnitudes within columns (a column of values near 1e6 with
#   some near 1e-9, whose low bits a pair of words would drop, and one of
#   values near 1e-300), has a
#   cluster of a single point, and negative coordinates. The second has 16
#   columns (the AVX-512 kernels' width) and clusters of 3000 points (more
#   changes than a partition's pending sums take before they are added to
#   its totals), with a column of zeros, one of subnormal numbers and one
#   near 1e150 (their squares near 1e300);
# - identical points have themselves as their mean (the mean is rounded
#   once, from the exact quotient);
# - --verify passes, also where a cluster's sum passes DBL_MAX (the
#   verifier sums in long double).
set -euo pipefail
export SOURCE_DATE_EPOCH=1700000000
: "${EMBER_BIN:?}"
export LC_ALL=C
km=$EMBER_BIN/ember-kmeans
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-kmeans-exact.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_kmeans_exact_sums: FAIL: $*" >&2; exit 1; }

awk 'BEGIN { srand(5); print "a,b,c,d";
  for (i = 0; i < 3000; i++) { g = i % 5; r1 = rand(); r2 = rand(); r3 = rand()
    a = (g < 3 ? g * 1e6 + r1 * 1e5 : 1e-9 * (1 + r1)) * (i % 2 ? 1 : -1)
    printf "%.17g,%.17g,%.17g,%.17g\n", a, g * 10 + r2, 1e-300 * (g + r3), -g * 3.5 + r3 }
  printf "%.17g,%.17g,%.17g,%.17g\n", 5e6, 1000.125, 3e-301, 77 }' > "$tmp/pts.csv"
# The last point alone is the first initial centroid: a cluster of one.
printf '%s\n' 5e6,1000.125,3e-301,77 1e6,10,0,-3.5 -1e6,10,0,-3.5 2e6,20,0,-7 \
  -2e6,20,0,-7 0,0,0,0 0,35,0,-12 > "$tmp/init.csv"

run() { # run OUT ARGS...
  local out=$1; shift
  "$km" --input "$tmp/pts.csv" --init "$tmp/init.csv" --tolerance 0 \
    --iterations 300 --quiet --output "$out" "$@" > "$out.stdout" 2> "$out.stderr" ||
    { cat "$out.stderr"; fail "ember-kmeans $*"; }
}
run "$tmp/ref.csv" --threads 1 --partitions 1
grep -q '^converged: yes' "$tmp/ref.csv.stdout" || fail "did not converge: $(cat "$tmp/ref.csv.stdout")"
for p in 2 7 64; do
  for t in 1 2; do
    run "$tmp/p$p-$t.csv" --threads "$t" --partitions "$p"
    cmp -s "$tmp/ref.csv" "$tmp/p$p-$t.csv" || fail "labels differ with --partitions $p --threads $t"
    cmp -s "$tmp/ref.centroids.csv" "$tmp/p$p-$t.centroids.csv" ||
      fail "centroids differ with --partitions $p --threads $t"
    cmp -s "$tmp/ref.csv.stdout" "$tmp/p$p-$t.csv.stdout" || fail "stdout differs with --partitions $p --threads $t"
  done
done

py=/usr/bin/python3
if ! [ -x "$py" ]; then
  echo "test_kmeans_exact_sums: $py is missing: the reference check is SKIPPED; the partition checks passed"
  exit 0
fi
cat > "$tmp/ref.py" <<'EOF'
import math, sys
from fractions import Fraction
lines = [l for l in open(sys.argv[1]).read().split("\n") if l]
if lines[0][0] not in "0123456789-.":
    lines = lines[1:]  # a header
rows = [list(map(float, l.split(","))) for l in lines]
labels = {}
for l in open(sys.argv[2]).read().split("\n")[1:]:
    if l:
        i, q = l.split(",")
        labels[int(i)] = int(q)
cents = {}
for l in open(sys.argv[3]).read().split("\n")[1:]:
    if l:
        f = l.split(",")
        cents[int(f[0])] = [float(v) for v in f[1:]]
d = len(rows[0])
bad, singles = 0, 0
for q, c in sorted(cents.items()):
    members = [rows[i] for i in range(len(rows)) if labels[i] == q]
    singles += len(members) == 1
    for j in range(d):
        # the exact mean, rounded once (Fraction to float is correctly
        # rounded, subnormal results included)
        want = float(sum(Fraction(r[j]) for r in members) / len(members))
        if want != c[j]:
            bad += 1
            print("centroid %d, coordinate %d: ember %r, the definition %r" % (q, j, c[j], want))
if sys.argv[4] == "single" and singles == 0:
    print("no cluster of one point: the data no longer tests what it should")
    bad += 1
if sys.argv[4] == "big" and max(list(labels.values()).count(q) for q in cents) <= 2048:
    print("no cluster of more than 2048 points: the data no longer tests what it should")
    bad += 1
sys.exit(bad != 0)
EOF
"$py" "$tmp/ref.py" "$tmp/pts.csv" "$tmp/ref.csv" "$tmp/ref.centroids.csv" single ||
  fail "the reference differs (above)"

# 16 columns, 3 clusters of 3000 points
awk 'BEGIN { srand(9); for (i = 0; i < 9000; i++) { g = i % 3
    for (j = 0; j < 16; j++) { r = rand()
      if (j == 0) f = "0"; else if (j == 1) f = sprintf("%de-324", 5 * (g * 1000 + int(r * 1000)))
      else if (j == 2) f = sprintf("%.17g", (g + r) * 1e150)
      else f = sprintf("%.17g", (j % 2 ? -1 : 1) * (g * 50 + r * (j + 1)))
      printf "%s%s", (j ? "," : ""), f }
    print "" } }' > "$tmp/wide.csv"
head -3 "$tmp/wide.csv" > "$tmp/wide-init.csv"
for t in 1 2; do
  "$km" --input "$tmp/wide.csv" --init "$tmp/wide-init.csv" --tolerance 0 --iterations 100 \
    --threads $t --partitions $((t == 1 ? 1 : 6)) --quiet --verify --output "$tmp/wide$t.csv" \
    > "$tmp/wide$t.out" 2>&1 || { cat "$tmp/wide$t.out"; fail "16 columns, $t threads"; }
  grep -q '^Verification: PASS' "$tmp/wide$t.out" || fail "16 columns: $(cat "$tmp/wide$t.out")"
done
cmp -s "$tmp/wide1.centroids.csv" "$tmp/wide2.centroids.csv" || fail "16 columns: centroids differ by threads"
"$py" "$tmp/ref.py" "$tmp/wide.csv" "$tmp/wide1.csv" "$tmp/wide1.centroids.csv" big ||
  fail "the reference differs on 16 columns (above)"

# a sum past DBL_MAX: the exact sums hold it, and so must the verifier
printf '1e308\n1e308\n' > "$tmp/big.csv"
"$km" --input "$tmp/big.csv" --k 1 --quiet --verify > "$tmp/big.out" 2>&1 ||
  { cat "$tmp/big.out"; fail "two points of 1e308"; }
grep -q '^Verification: PASS' "$tmp/big.out" || fail "two points of 1e308: $(cat "$tmp/big.out")"
# identical points: the centroid is the point itself (three 0.1 summed and
# divided in doubles give 0.10000000000000002; five copies of the largest
# double, a centroid below it, whose distance to them overflows), and
# --verify passes after one iteration, the centroids still moving
printf '0.1\n0.1\n0.1\n5\n5\n5\n' > "$tmp/dup.csv"
"$km" --input "$tmp/dup.csv" --k 2 --iterations 1 --verify --output "$tmp/dup-out.csv" \
  > "$tmp/dup.out" 2>&1 || { cat "$tmp/dup.out"; fail "duplicates"; }
grep -qx '0,0.10000000000000001' "$tmp/dup-out.centroids.csv" && grep -qx '1,5' "$tmp/dup-out.centroids.csv" ||
  fail "the centroids of identical points: $(cat "$tmp/dup-out.centroids.csv")"
for n in 5 9 10; do
  awk -v n=$n 'BEGIN { for (i = 0; i < n; i++) print "1.7976931348623157e308" }' > "$tmp/max.csv"
  "$km" --input "$tmp/max.csv" --k 1 --quiet --verify > "$tmp/max.out" 2>&1 ||
    { cat "$tmp/max.out"; fail "$n copies of the largest double"; }
  grep -q '^inertia: 0$' "$tmp/max.out" || fail "$n copies of the largest double: $(cat "$tmp/max.out")"
done
# One value far larger than the rest of its column (a fill value): the
# other clusters' means stay exact (they were within 2^(e - 103) of it, so
# 1, 2, 3 came out as 0), and a cluster of identical points is that point.
printf '1e40,5\n1,5\n2,5\n3,5\n' > "$tmp/fill.csv"
printf 'label,x0,x1\n0,1,5\n1,1e40,5\n' > "$tmp/fill-init.csv"
"$km" --input "$tmp/fill.csv" --init "$tmp/fill-init.csv" --quiet --verify \
  --output "$tmp/fill-out.csv" > "$tmp/fill.out" 2>&1 || { cat "$tmp/fill.out"; fail "a fill value"; }
printf 'label,x0,x1\n0,2,5\n1,1e+40,5\n' | cmp -s - "$tmp/fill-out.centroids.csv" ||
  fail "a fill value: $(cat "$tmp/fill-out.centroids.csv")"
printf '1.1\n1.1\n1.1\n1e20\n-3e-310\n' > "$tmp/same.csv"
printf 'label,x0\n0,1.1\n1,1e20\n2,-3e-310\n' > "$tmp/same-init.csv"
"$km" --input "$tmp/same.csv" --init "$tmp/same-init.csv" --quiet --output "$tmp/same-out.csv" \
  > /dev/null 2>&1 || fail "identical points beside 1e20"
grep -q '^0,1.1000000000000001$' "$tmp/same-out.centroids.csv" ||
  fail "identical points beside 1e20: $(cat "$tmp/same-out.centroids.csv")"
"$py" "$tmp/ref.py" "$tmp/fill.csv" "$tmp/fill-out.csv" "$tmp/fill-out.centroids.csv" any ||
  fail "a fill value: the reference differs (above)"
echo "test_kmeans_exact_sums: PASS"
