#!/usr/bin/env bash
# ember-inspect on a checkpoint directory holding a good checkpoint and one
# with flipped bytes: it names the bad one and the failed whole-file
# checksum, exits 1, and its --json output
# is one valid JSON object per file. A good file alone exits 0; a missing
# path, an empty directory or no argument exits 2; a file that is not HDF5
# at all fails (1). ember-kmeans then resumes from the good checkpoint,
# skipping the bad one, and finishes with the uninterrupted run's output.
set -euo pipefail
# The outputs record when they were written (`created`); a fixed
# SOURCE_DATE_EPOCH makes two runs' files comparable byte for byte.
export SOURCE_DATE_EPOCH=1700000000
: "${EMBER_BIN:?}" "${EMBER_SRC:?}"
export LC_ALL=C
km=$EMBER_BIN/ember-kmeans
ins=$EMBER_BIN/ember-inspect
json_check=$EMBER_SRC/tests/integration/json_check.awk
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-inspect.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_inspect_corrupt: FAIL: $*" >&2; exit 1; }
status() { set +e; "$@" >"$tmp/last.out" 2>"$tmp/last.err"; echo $?; set -e; }

# Seed 0x4142434445464748: the RNG blob then holds the bytes "HGFEDCBA",
# which locate its data in the file.
seed=4702394921427289928
args=(--input "$EMBER_SRC/data/iris.csv" --k 3 --init random --seed "$seed" --tolerance 0)
"$km" "${args[@]}" --quiet --output "$tmp/ref.h5" >/dev/null || fail "reference run"
"$km" "${args[@]}" --iterations 2 --checkpoint-dir "$tmp/ck" --checkpoint-every 1 --keep 2 \
  --quiet >/dev/null || fail "checkpointed run"
good=$tmp/ck/$(ls "$tmp/ck" | grep '^ckpt-.*\.h5$' | head -1)
bad=$tmp/ck/$(ls "$tmp/ck" | grep '^ckpt-.*\.h5$' | tail -1)
[ "$good" != "$bad" ] || fail "expected two checkpoints in $tmp/ck"

[ "$(status "$ins" "$tmp/ck")" = 0 ] || { cat "$tmp/last.out" "$tmp/last.err"; fail "fresh checkpoints do not verify"; }
grep -q 'iteration: *1$' "$tmp/last.out" || fail "no iteration 1 in the report"
grep -q 'program=\|ember-kmeans' "$tmp/last.out" || fail "no program in the report"
# a matrix as the signature says it (3 x 4), not as rows of a field
grep -qE 'scalars/centroids +f64\[3x4\] +12 values' "$tmp/last.out" ||
    fail "centroids not listed as f64[3x4]: $(grep centroids "$tmp/last.out")"

# Flip the blob's bytes in the newer file.
off=$(grep -obUa 'HGFEDCBA' "$bad" | head -1 | cut -d: -f1)
[ -n "$off" ] || fail "RNG blob bytes not found in $bad"
printf 'XXXX' | dd of="$bad" bs=1 seek="$off" conv=notrunc status=none

[ "$(status "$ins" "$tmp/ck")" = 1 ] || { cat "$tmp/last.out" "$tmp/last.err"; fail "a corrupted directory did not exit 1"; }
grep -q "^$bad: FAILS VERIFICATION" "$tmp/last.out" || { cat "$tmp/last.out"; fail "the bad file is not named"; }
grep -q "^$good: verified" "$tmp/last.out" || fail "the good file is not reported verified"
# The whole-file checksum refuses it before HDF5 parses anything.
grep -q "error: *$bad: content checksum mismatch" "$tmp/last.out" || { cat "$tmp/last.out"; fail "the checksum failure is not named"; }

[ "$(status "$ins" --json "$tmp/ck")" = 1 ] || fail "--json on a corrupted directory did not exit 1"
cp "$tmp/last.out" "$tmp/ck.json"
[ "$(wc -l <"$tmp/ck.json")" = 2 ] || fail "--json: expected one line per file"
awk -f "$json_check" "$tmp/ck.json" || fail "--json output is not valid JSON"
grep -q "^{\"path\": \"$bad\", \"readable\": false, \"verified\": false" "$tmp/ck.json" || fail "--json: bad file not verified=false"
grep -q "^{\"path\": \"$good\", \"readable\": true, \"verified\": true" "$tmp/ck.json" || fail "--json: good file not verified=true"
for key in iteration created bytes fingerprint items lineage parameters; do
  grep -q "\"$key\": " "$tmp/ck.json" || fail "--json: no key $key"
done
sed -n '1s/.*"iteration": \([0-9]*\).*/\1/p' "$tmp/ck.json" | grep -qx 1 || fail "--json: iteration of the first file is not 1"

[ "$(status "$ins" "$good")" = 0 ] || fail "the good file alone did not exit 0"
[ "$(status "$ins" "$tmp/nosuch")" = 2 ] || fail "a missing path did not exit 2"
mkdir "$tmp/empty"
[ "$(status "$ins" "$tmp/empty")" = 2 ] || fail "an empty directory did not exit 2"
[ "$(status "$ins")" = 2 ] || fail "no argument did not exit 2"
[ "$(status "$ins" --bogus "$tmp/ck")" = 2 ] || fail "an unknown option did not exit 2"

# Not HDF5 at all, and truncated: both reported, both fail.
mkdir "$tmp/junk"
echo "not a checkpoint" >"$tmp/junk/ckpt-000000000007.h5"
head -c 3000 "$good" >"$tmp/junk/ckpt-000000000008.h5"
[ "$(status "$ins" --json "$tmp/junk")" = 1 ] || fail "junk files did not exit 1"
awk -f "$json_check" "$tmp/last.out" || fail "--json on junk is not valid JSON"
[ "$(grep -c '"verified": false' "$tmp/last.out")" = 2 ] || fail "junk files not both unverified"

# The loop skips the bad checkpoint and resumes from the good one.
"$km" "${args[@]}" --checkpoint-dir "$tmp/ck" --checkpoint-every 1 --keep 2 \
  --output "$tmp/out.h5" >/dev/null 2>"$tmp/resume.err" || { cat "$tmp/resume.err"; fail "resume past a bad checkpoint"; }
grep -q 'resumed from .* at iteration 1$' "$tmp/resume.err" || { cat "$tmp/resume.err"; fail "did not resume from the good checkpoint"; }
grep -q "skipping checkpoint $bad: .*content checksum mismatch" "$tmp/resume.err" || { cat "$tmp/resume.err"; fail "the skip does not name the bad file and the checksum"; }
cmp -s "$tmp/ref.h5" "$tmp/out.h5" || fail "output after skipping the bad checkpoint differs"
# A file that is no HDF5 file at all (a text edge list) is called that,
# not "written by an early ember 0.1.0 build or another program".
printf '0 1\n1 2\n%.0s' $(seq 300) > "$tmp/g.el"
"$ins" "$tmp/g.el" > "$tmp/el.out" 2>&1 && fail "inspect passed a text file"
grep -q "not an HDF5 file: a text file" "$tmp/el.out" || { cat "$tmp/el.out"; fail "a text file is not called that"; }
echo "test_inspect_corrupt: PASS"
