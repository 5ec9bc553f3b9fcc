#!/usr/bin/env bash
# test_hdf5_crash_refused.sh: the libhdf5 1.10 SEGV of issue 9 stays outside.
#
# One changed byte in a karate PageRank checkpoint sets the stored size of
# the single Fletcher32 chunk of a scalar (/scalars/cli_value in the 0.1.0
# file, a 12-byte chunk such as /scalars/residual in new ones) to 2. libhdf5 then
# checksums 2 - 4 bytes (an unsigned underflow) and dies with SIGSEGV in
# H5_checksum_fletcher32 under H5Dread (reproduced with HDF5 alone by
# /work/shared/repro/h5_only_read.c). data/hdf5_segv_fletcher32.h5 is that
# file as ember 0.1.0 wrote it (no checksum header).
# - That file: ember-inspect fails it as unverifiable, without crashing.
# - The same byte changed in a fresh checkpoint (found by the layout
#   message's bytes: chunk size 12 as a u64, then a zero filter mask): the
#   whole-file checksum refuses it; ember-inspect fails it; a resume skips
#   it naming it and gives the uninterrupted run's ranks.
set -euo pipefail
: "${EMBER_BIN:?}" "${EMBER_SRC:?}"
export LC_ALL=C
T=$(mktemp -d "${TMPDIR:-/tmp}/ember-segv.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"
fail() { echo "test_hdf5_crash_refused: FAIL: $*" >&2; exit 1; }
pr=$EMBER_BIN/ember-pagerank
ins=$EMBER_BIN/ember-inspect
st() { set +e; "$@" >out.txt 2>&1; echo $?; set -e; }

s=$(st "$ins" "$EMBER_SRC/tests/integration/data/hdf5_segv_fletcher32.h5")
[ "$s" -eq 1 ] || fail "ember-inspect on the crashing file: exit $s: $(cat out.txt)"
grep -q "cannot be verified" out.txt || fail "unclear: $(cat out.txt)"

args=(--input "$EMBER_SRC/data/karate.el" --undirected --output out.csv)
"$pr" "${args[@]}" --quiet && mv out.csv ref.csv
"$pr" "${args[@]}" --quiet --checkpoint-dir ck --checkpoint-every 10 --keep 10
rm -f out.csv
at=$(grep -obUaP '\x0c\x00{11}' ck/ckpt-000000000020.h5 | head -1 | cut -d: -f1)
[ -n "$at" ] || fail "no 12-byte scalar chunk size was found"
mkdir rk && cp ck/ckpt-000000000010.h5 rk/
cp ck/ckpt-000000000020.h5 rk/ckpt-000000000020.h5
printf '\x02' | dd of=rk/ckpt-000000000020.h5 bs=1 seek="$at" conv=notrunc status=none
s=$(st "$ins" rk/ckpt-000000000020.h5)
[ "$s" -eq 1 ] || fail "ember-inspect on the damaged checkpoint: exit $s: $(cat out.txt)"
grep -q "content checksum mismatch" out.txt || fail "unclear: $(cat out.txt)"
s=$(st "$pr" "${args[@]}" --checkpoint-dir rk --checkpoint-every 10)
[ "$s" -eq 0 ] || fail "resume: exit $s: $(cat out.txt)"
grep -q "skipping checkpoint rk/ckpt-000000000020.h5: .*content checksum mismatch" out.txt ||
    fail "no skip message: $(cat out.txt)"
cmp -s ref.csv out.csv || fail "ranks after the skip differ"
echo "test_hdf5_crash_refused: PASS"
