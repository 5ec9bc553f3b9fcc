#!/usr/bin/env bash
# Determinism: ember-kmeans gives bit-identical output files with 1, 2 and 4
# threads, with the default partitioning and with --partitions 7, and with
# every distance kernel this CPU has (EMBER_KMEANS_ISA=avx512|avx2|serial
# all compute the same fma-ordered distances).
set -euo pipefail
# The outputs record when they were written (`created`); a fixed
# SOURCE_DATE_EPOCH makes two runs' files comparable byte for byte.
export SOURCE_DATE_EPOCH=1700000000
: "${EMBER_BIN:?}" "${EMBER_SRC:?}"
export LC_ALL=C
km=$EMBER_BIN/ember-kmeans
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-kmeans-threads.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_kmeans_threads: FAIL: $*" >&2; exit 1; }

# 60,000 points in 5 dimensions around 8 centres (awk's generator: the
# data only has to be the same within this test).
awk 'BEGIN { srand(11); print "a,b,c,d,e";
  for (i = 0; i < 60000; i++) { c = i % 8;
    for (j = 0; j < 5; j++) printf "%s%.5f", (j ? "," : ""), c * (j + 1) % 7 + 2 * rand();
    printf "\n" } }' >"$tmp/pts.csv"

same() { # same A B: identical files (h5dump's diff on failure)
  cmp -s "$1" "$2" && return 0
  command -v h5dump >/dev/null && diff <(h5dump "$1") <(h5dump "$2") | head -20 >&2
  fail "$1 and $2 differ"
}

for parts in 0 7; do
  pflag=()
  [ "$parts" = 0 ] || pflag=(--partitions "$parts")
  for t in 1 2 4; do
    "$km" --input "$tmp/pts.csv" --k 12 --init kmeans++ --seed 3 --tolerance 0 \
      --threads "$t" "${pflag[@]}" --quiet --verify --output "$tmp/p$parts-t$t.h5" \
      >"$tmp/p$parts-t$t.out" || { cat "$tmp/p$parts-t$t.out"; fail "threads $t partitions $parts"; }
    grep -q '^Verification: PASS$' "$tmp/p$parts-t$t.out" || fail "no PASS (threads $t)"
  done
  same "$tmp/p$parts-t1.h5" "$tmp/p$parts-t2.h5"
  same "$tmp/p$parts-t1.h5" "$tmp/p$parts-t4.h5"
done

for isa in avx512 avx2 serial; do
  EMBER_KMEANS_ISA=$isa "$km" --input "$tmp/pts.csv" --k 12 --init kmeans++ --seed 3 \
    --tolerance 0 --threads 2 --quiet --output "$tmp/isa-$isa.h5" >/dev/null \
    || fail "EMBER_KMEANS_ISA=$isa"
  same "$tmp/p0-t1.h5" "$tmp/isa-$isa.h5"
done
echo "test_kmeans_threads: PASS"
