#!/usr/bin/env bash
# The engine's floors (docs/design.md, "Floors"): a file of the engine calls
# only files on its own floor or below, never one above. Checked on the
# built objects of libember with nm: every ember_/ember__ symbol an object
# uses is traced to the object that defines it. A call that goes up a floor
# fails the test, naming the caller, the symbol and both floors.
set -euo pipefail
objdir=${EMBER_BUILD:?}/CMakeFiles/ember.dir/src
[ -d "$objdir" ] || { echo "FAIL: no objects in $objdir" >&2; exit 1; }
command -v nm > /dev/null || { echo "FAIL: nm is not installed" >&2; exit 1; }

# Floor of each engine file, bottom first. Files not listed (the loop,
# streams, graphs, text, the context) sit above every floor: the engine
# never calls them.
declare -A floor=(
    [util]=0 [type]=0 [filesum]=0 [comm]=0 [dirlock]=0 [h5edit]=0 [mapfile]=0
    [store]=1 [h5io]=1 [ckptfile]=1 [ckptpar]=1
    [ds]=2 [lineage]=2
    [exec]=3 [shuffle]=3
    [actions]=4
    [checkpoint]=5 [save]=5
)

declare -A owner
for o in "$objdir"/*.c.o; do
    f=$(basename "$o" .c.o)
    while read -r sym; do
        owner[$sym]=$f
    done < <(nm --defined-only -g "$o" | awk '$3 ~ /^ember/ {print $3}')
done
[ "${#owner[@]}" -gt 100 ] || { echo "FAIL: found only ${#owner[@]} symbols" >&2; exit 1; }

bad=0
checked=0
for f in "${!floor[@]}"; do
    o="$objdir/$f.c.o"
    [ -f "$o" ] || { echo "FAIL: $f.c.o is missing" >&2; exit 1; }
    while read -r sym; do
        d=${owner[$sym]:-}
        [ -n "$d" ] || continue # HDF5, zstd, libc
        checked=$((checked + 1))
        up=${floor[$d]:-99}
        if [ "$up" -gt "${floor[$f]}" ]; then
            echo "FAIL: $f.c (floor ${floor[$f]}) calls $sym of $d.c (floor $up)" >&2
            bad=1
        fi
    done < <(nm -u "$o" | awk '$2 ~ /^ember/ {print $2}')
done
[ "$checked" -gt 50 ] || { echo "FAIL: checked only $checked calls" >&2; exit 1; }
[ "$bad" -eq 0 ] || exit 1
echo "layering: $checked calls between engine files, none upward"
