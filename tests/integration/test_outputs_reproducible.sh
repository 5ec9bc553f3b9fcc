#!/usr/bin/env bash
# formats.md, "Provenance": with SOURCE_DATE_EPOCH set, two runs give the
# same bytes. HDF5 stamps every object it creates with the time unless told
# not to, so each program's HDF5 output is written twice, more than a
# second apart, and compared byte for byte (the outputs of ember-pagerank,
# ember-cc, ember-sssp, ember-kmeans, ember-convert and ember-gen, nested
# groups included).
set -euo pipefail
: "${EMBER_BIN:?}" "${EMBER_SRC:?}"
export SOURCE_DATE_EPOCH=1700000000 OMP_NUM_THREADS=2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-repro.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_outputs_reproducible: FAIL: $*" >&2; exit 1; }
el=$EMBER_SRC/data/karate.el
write_all() { # write_all SUFFIX
  local s=$1 b=$EMBER_BIN
  "$b/ember-pagerank" --input "$el" --output "$tmp/pr$s.h5" --quiet > /dev/null
  "$b/ember-cc" --input "$el" --output "$tmp/cc$s.h5" --quiet > /dev/null
  "$b/ember-sssp" --input "$EMBER_SRC/data/karate-weighted.el" --source 0 --output "$tmp/ss$s.h5" --quiet > /dev/null
  "$b/ember-kmeans" --input "$EMBER_SRC/data/iris.csv" --k 3 --output "$tmp/km$s.h5" --quiet > /dev/null
  "$b/ember-convert" "$el" "$tmp/g$s.h5" > /dev/null
  "$b/ember-gen" blobs --n 100 --d 2 --k 2 --output "$tmp/bl$s.h5:/a/b/points" --quiet
  "$b/ember-gen" kron --scale 6 --output "$tmp/kr$s.h5" --quiet
}
write_all 1
sleep 1.2
write_all 2
for f in pr cc ss km g bl kr; do
  cmp "$tmp/${f}1.h5" "$tmp/${f}2.h5" > /dev/null || fail "$f: two runs gave different bytes"
done
echo "test_outputs_reproducible: PASS"
