#!/usr/bin/env bash
# `ember-convert in.el g` (no extension) writes HDF5; the programs read an
# input named without .h5/.hdf5/.mtx as HDF5 when it holds HDF5's signature
# ("g:1: a NUL byte" before), the same graph as g.h5. --format stays
# authoritative: --format el reads it as an edge list and fails.
set -uo pipefail
bin=${EMBER_BIN:?}
src=${EMBER_SRC:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "test_graph_format_content: FAIL: $*" >&2; exit 1; }

"$bin/ember-convert" "$src/data/karate.el" g 2> err.txt || fail "convert to g: $(cat err.txt)"
"$bin/ember-convert" "$src/data/karate.el" g.h5 2> err.txt || fail "convert to g.h5: $(cat err.txt)"
for p in ember-pagerank ember-cc; do
    "$bin/$p" --input g.h5 --output want.csv 2> err.txt || fail "$p g.h5: $(cat err.txt)"
    "$bin/$p" --input g --output got.csv 2> err.txt || fail "$p g: $(cat err.txt)"
    cmp -s want.csv got.csv || fail "$p: g and g.h5 differ"
done
"$bin/ember-pagerank" --input g --format el > /dev/null 2> err.txt
st=$?
[ "$st" -eq 2 ] && grep -q "NUL byte" err.txt || fail "--format el: exit $st: $(cat err.txt)"
# an edge list without an extension is still one
cp "$src/data/karate.el" plain
"$bin/ember-pagerank" --input plain --output plain.csv 2> err.txt || fail "plain: $(cat err.txt)"
"$bin/ember-pagerank" --input g.h5 --output pr.csv 2> err.txt || fail "g.h5: $(cat err.txt)"
cmp -s pr.csv plain.csv || fail "the edge list named plain: other ranks"
# a Matrix Market file converted by its extension (the load reads the file
# through a descriptor, whose name has none)
printf '%%%%MatrixMarket matrix coordinate pattern general\n3 3 2\n1 2\n2 3\n' > m.mtx
"$bin/ember-convert" m.mtx m.h5 > out.txt 2> err.txt || fail "convert m.mtx: $(cat err.txt)"
grep -q "3 vertices, 2 edges" out.txt || fail "convert m.mtx: $(cat out.txt)"
exit 0
