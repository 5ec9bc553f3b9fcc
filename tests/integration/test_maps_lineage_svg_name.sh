#!/usr/bin/env bash
# ember-maps --lineage-svg draws SVG whatever the name: `--lineage-svg
# l2.png` wrote SVG into a .png file. A name not ending in .svg exits 2
# naming the argument, before any work and without making the file (as
# ember-inspect --plot --output does).
set -uo pipefail
bin=${EMBER_BIN:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "test_maps_lineage_svg_name: FAIL: $*" >&2; exit 1; }

for name in l2.png lineage svg lineage.svg.txt; do
    "$bin/ember-maps" --n 1000 --maps 3 --quiet --lineage-svg "$name" > out.txt 2> err.txt
    st=$?
    [ "$st" -eq 2 ] || fail "$name: exit $st, wanted 2: $(cat err.txt)"
    grep -qF -- "--lineage-svg $name" err.txt || fail "$name: not named: $(cat err.txt)"
    [ ! -e "$name" ] || fail "$name: written"
    [ ! -s out.txt ] || fail "$name: ran: $(cat out.txt)"
done
exit 0
