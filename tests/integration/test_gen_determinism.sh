#!/usr/bin/env bash
# ember-gen: kron and blobs give the same output for any thread count; a
# seed changes it; kron has 2^S vertices and E * 2^S lines; its .h5 equals
# ember-convert of its .el; blobs' CSV and HDF5 hold the same numbers.
set -euo pipefail
bin=${EMBER_BIN:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

for t in 1 2 3; do
    "$bin/ember-gen" kron --scale 12 --edge-factor 8 --seed 5 --output k$t.el --threads $t
    "$bin/ember-gen" kron --scale 12 --edge-factor 8 --seed 5 --output k$t.h5 --threads $t --quiet
    "$bin/ember-gen" blobs --n 1000 --d 3 --k 4 --seed 5 --output b$t.csv --threads $t
done
cmp k1.el k2.el && cmp k1.el k3.el || fail "kron text differs across thread counts"
cmp b1.csv b2.csv && cmp b1.csv b3.csv || fail "blobs differ across thread counts"
[ "$(grep -vc '^#' k1.el)" = $((8 << 12)) ] || fail "kron: not E * 2^S edges"
awk '!/^#/ { if ($1 >= 4096 || $2 >= 4096) bad = 1 } END { exit bad }' k1.el ||
    fail "kron: a vertex beyond 2^S"
"$bin/ember-gen" kron --scale 12 --edge-factor 8 --seed 6 --output other.el
cmp -s k1.el other.el && fail "the seed does not change kron"
# R-MAT skew: the most frequent source carries far more than the average
awk '!/^#/ { c[$1]++ } END { for (v in c) if (c[v] > m) m = c[v]; exit !(m > 100) }' k1.el ||
    fail "kron: no skew"

if command -v h5dump > /dev/null; then
    for t in 2 3; do
        h5dump -d /csr/targets k1.h5 | tail -n +2 > a.txt
        h5dump -d /csr/targets k$t.h5 | tail -n +2 > b.txt
        cmp a.txt b.txt || fail "kron .h5 differs across thread counts"
    done
    "$bin/ember-convert" k1.el c.h5 --quiet
    for d in offsets targets; do
        h5dump -d /csr/$d k1.h5 | tail -n +2 > a.txt
        h5dump -d /csr/$d c.h5 | tail -n +2 > b.txt
        cmp a.txt b.txt || fail "ember-gen .h5 and ember-convert of .el differ in $d"
    done
    { h5dump -a /csr/n c.h5 > h5.txt; grep -q "(0): 4096" h5.txt; } || fail "/csr attribute n"
    "$bin/ember-gen" blobs --n 1000 --d 3 --k 4 --seed 5 --output b.h5:/points --quiet
    { h5dump -d /points b.h5 > h5.txt; grep -q "SIMPLE { ( 1000, 3 )" h5.txt; } || fail "blobs .h5 shape"
fi
[ "$(wc -l < b1.csv)" = 1001 ] || fail "blobs: not a header and 1000 rows"
head -1 b1.csv | grep -qx "x0,x1,x2" || fail "blobs header"
echo PASS
