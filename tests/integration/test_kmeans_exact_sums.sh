#!/usr/bin/env bash
# ember-kmeans' centroids are means of exact integer sums (the "exact sums"
# definition in algorithms/ember-kmeans.c and docs/formats.md), so:
# - the output is the same bytes for any --partitions and thread count
#   (with floating-point sums the partitions decided the summation order);
# - each converged centroid is, bit for bit, the value an independent
#   implementation of the definition gives from the input and the labels
#   (Python integers and floats, here). The data mixes magnitudes within
#   columns (a column of values near 1e6 with some near 1e-9, whose low bits
#   the scaled pairs drop, and one of values near 1e-300), has a cluster of
#   a single point, and negative coordinates.
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
"$py" - "$tmp/pts.csv" "$tmp/ref.csv" "$tmp/ref.centroids.csv" <<'EOF' || fail "the reference differs (above)"
import math, sys
rows = [list(map(float, l.split(","))) for l in open(sys.argv[1]).read().split("\n")[1:] if l]
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
scale = [51 - math.frexp(max(abs(r[j]) for r in rows))[1] for j in range(d)]
bad, singles = 0, 0
for q, c in sorted(cents.items()):
    members = [rows[i] for i in range(len(rows)) if labels[i] == q]
    singles += len(members) == 1
    for j in range(d):
        H = L = 0
        for r in members:
            v = math.ldexp(r[j], scale[j])
            h = round(v)          # to nearest, ties to even
            H += h
            L += round((v - h) * 2.0 ** 51)
        carry = L >> 51
        H, L = H + carry, L - (carry << 51)
        want = math.ldexp((float(H) + float(L) * 2.0 ** -51) / len(members), -scale[j])
        if want != c[j]:
            bad += 1
            print("centroid %d, coordinate %d: ember %r, the definition %r" % (q, j, c[j], want))
if singles == 0:
    print("no cluster of one point: the data no longer tests what it should")
    bad += 1
sys.exit(bad != 0)
EOF
echo "test_kmeans_exact_sums: PASS"
