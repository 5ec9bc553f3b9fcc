#!/usr/bin/env bash
# Whole-file checksum cost (issue 9, section 2), medians of RUNS, warm page
# cache: verifying a sealed file (XXH3-128 over every byte, as every resume
# and ember-inspect do before HDF5 opens a checkpoint) against a plain read
# of the same file. The file is a Kronecker graph from ember-gen (sealed the
# same way as checkpoints), SCALE default 20. Printed, never asserted.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${EMBER_BUILD:-$here/../build}
bin=${EMBER_BIN:-$build/bin}
RUNS=${RUNS:-5} SCALE=${SCALE:-20}
work=$(mktemp -d "${BENCH_DIR:-/tmp}/ember-fsbench.XXXXXX")
trap 'rm -rf "$work"' EXIT
gcc -O2 ${BENCH_CFLAGS:-} "$here/filesum_check.c" -L"$build/lib" -lember -Wl,-rpath,"$build/lib" \
    -o "$work/filesum_check"
"$bin/ember-gen" kron --scale "$SCALE" --edge-factor 16 --seed 1 --output "$work/g.h5" --quiet
"$work/filesum_check" "$work/g.h5" > /dev/null # warm the cache
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
: > "$work/c"; : > "$work/r"
for _ in $(seq "$RUNS"); do
    read -r c r bytes < <("$work/filesum_check" "$work/g.h5")
    echo "$c" >> "$work/c"; echo "$r" >> "$work/r"
done
c=$(median < "$work/c"); r=$(median < "$work/r")
awk -v c="$c" -v r="$r" -v b="$bytes" 'BEGIN {
    printf "whole-file checksum: %d bytes, median of runs, warm\n", b
    printf "  verify %.4f s (%.0f MB/s)   plain read %.4f s (%.0f MB/s)   verify / read %.2fx\n", c, b/c/1e6, r, b/r/1e6, c/r
}'
