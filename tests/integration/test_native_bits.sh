#!/usr/bin/env bash
# Bit-identity across builds (issue 11, section 4): the generic x86-64
# build, an EMBER_NATIVE=ON build (-march=native, -ffp-contract=off) and
# every runtime kernel (EMBER_KMEANS_ISA, EMBER_PAGERANK_ISA) give the same
# bits. The raw bytes
# of PageRank's ranks (Kronecker scale 12, 20 iterations) and k-means'
# centroids and labels (blobs 20000 x 16, k 16, 20 iterations) must hash to
# the values the generic build produced, checked in below (k-means' centroids
# since its sums became exact integers). A build that
# let the compiler contract a * b + c into an FMA changes these bits.
set -euo pipefail
: "${EMBER_BIN:?}"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-native-bits.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_native_bits: FAIL: $*" >&2; exit 1; }
# sha256 of dataset $2 of file $1, as little-endian raw bytes
raw_sum() {
    rm -f "$tmp/raw.bin"
    h5dump -b LE -d "$2" -o "$tmp/raw.bin" "$1" > /dev/null || fail "h5dump $1:$2"
    sha256sum "$tmp/raw.bin" | cut -d' ' -f1
}
want_ranks=eeb849ac710f36127f6cc0d0104436b46ab70fcbf7e6bd7e4ec865c2865d3da1
want_centroids=319aab3972fdc9b9069679a03c29cc1eedbebd369240b75485adea4cee46c93c
want_labels=43b699bcc34fcdaf7436745978eb2b764fa3880ab8bb70492db2c9ef7dd3b00c

"$EMBER_BIN/ember-gen" kron --scale 12 --seed 1 --output "$tmp/g.h5" --quiet
for isa in "" avx512 avx2 generic; do
    EMBER_PAGERANK_ISA=$isa "$EMBER_BIN/ember-pagerank" --input "$tmp/g.h5" --iterations 20 \
        --tolerance 0 --threads 2 --output "$tmp/pr.h5" --quiet > /dev/null \
        || fail "ember-pagerank (EMBER_PAGERANK_ISA=$isa)"
    got=$(raw_sum "$tmp/pr.h5" /ranks)
    [ "$got" = "$want_ranks" ] || fail "ranks hash $got (kernel '${isa:-default}'), the generic build's is $want_ranks"
    rm -f "$tmp/pr.h5"
done

"$EMBER_BIN/ember-gen" blobs --n 20000 --d 16 --k 16 --seed 1 --output "$tmp/pts.h5" --quiet
for isa in "" avx512 avx2 serial generic bogus; do
    EMBER_KMEANS_ISA=$isa "$EMBER_BIN/ember-kmeans" --input "$tmp/pts.h5" --k 16 --seed 1 \
        --tolerance 0 --iterations 20 --threads 2 --output "$tmp/km.h5" --quiet > /dev/null \
        2> "$tmp/err" || fail "ember-kmeans (EMBER_KMEANS_ISA=$isa)"
    # a name it does not know is said, not silently taken for serial
    if [ "$isa" = bogus ]; then
        grep -q 'EMBER_KMEANS_ISA=bogus is not avx512, avx2 or serial' "$tmp/err" \
            || fail "EMBER_KMEANS_ISA=bogus: no note on stderr"
    fi
    got=$(raw_sum "$tmp/km.h5" /centroids)
    [ "$got" = "$want_centroids" ] || fail "centroids hash $got (kernel '${isa:-default}'), the generic build's is $want_centroids"
    got=$(raw_sum "$tmp/km.h5" /labels)
    [ "$got" = "$want_labels" ] || fail "labels hash $got (kernel '${isa:-default}'), the generic build's is $want_labels"
    rm -f "$tmp/km.h5"
done
echo "test_native_bits: PASS"
