#!/usr/bin/env bash
# ember-inspect names every file for what it is (docs/formats.md,
# "ember-inspect"), with exit statuses to match:
# - a stream's state directory (N.h5 snapshots) and its checkpoint location
#   are inspected like a checkpoint directory (exit 0), and --plot on them
#   says why they cannot be drawn;
# - a short text edge list is "not an HDF5 file: a text file" (exit 1), not
#   a checksum failure; --json says "file": "text";
# - program outputs and graphs are "verified: not a checkpoint", with what
#   made them (exit 0): ember-gen blobs at FILE.h5:/a/b is an ember-gen
#   output, never "written by something else"; --json gives verified:true,
#   "file": "ember" and the description text mode gives; the same when
#   ember-inspect is started with SIGCHLD ignored;
# - --help ends with ember-inspect's own exit statuses, not the loop
#   programs' (no 75).
# Also what ember-gen and ember-convert write: every ember-gen output is
# named on stdout, and ember-convert's and ember-gen's provenance
# `parameters` hold what made the file (the input's hash, the format read,
# the generator's settings), with no partitions= line.
set -euo pipefail
: "${EMBER_BIN:?}" "${EMBER_SRC:?}"
export LC_ALL=C
b=$EMBER_BIN
ins=$b/ember-inspect
json_check=$EMBER_SRC/tests/integration/json_check.awk
T=$(mktemp -d "${TMPDIR:-/tmp}/ember-inspect-files.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"
fail() { echo "test_inspect_files: FAIL: $*" >&2; exit 1; }
st() { local rc=0; "$@" >out.txt 2>err.txt || rc=$?; echo "$rc"; }

# ---- a stream's state ----------------------------------------------------------
mkdir src
printf 'a b a\n' > src/f1.txt
printf 'b c\n' > src/f2.txt
"$b/ember-stream-wordcount" --source src --checkpoint-location loc --sink sink \
    --output-mode complete --trigger available-now --max-files-per-trigger 1 --quiet \
    > /dev/null || fail "the stream run"
ls loc/state/*.h5 > /dev/null 2>&1 || fail "the stream wrote no state snapshot"
n=$(ls loc/state | grep -c '^[0-9]*\.h5$')
[ "$(st "$ins" loc/state)" = 0 ] || fail "inspect of a stream state directory: $(cat out.txt err.txt)"
[ "$(grep -c ': verified$' out.txt)" = "$n" ] || fail "not every snapshot reported: $(cat out.txt)"
grep -q 'kind: *stream-state' out.txt || fail "no stream-state kind: $(cat out.txt)"
[ "$(st "$ins" loc)" = 0 ] || fail "inspect of a stream checkpoint location: $(cat out.txt err.txt)"
grep -q "^loc/state/[0-9]*\.h5: verified$" out.txt || fail "the location's snapshots: $(cat out.txt)"
[ "$(st "$ins" --plot loc/state --output p.svg)" = 2 ] || fail "--plot on stream state"
grep -q "stream state snapshots (N.h5) record no convergence history" err.txt ||
    fail "--plot on stream state does not say why: $(cat err.txt)"
mkdir empty
[ "$(st "$ins" empty)" = 2 ] || fail "an empty directory did not exit 2"

# ---- a text file -------------------------------------------------------------------
printf '0 1\n1 2\n2 0\n' > g.el
[ "$(st "$ins" g.el)" = 1 ] || fail "a text file did not exit 1"
grep -q '^g.el: not an HDF5 file: a text file' out.txt || fail "a text file: $(cat out.txt)"
grep -q 'FAILS VERIFICATION\|too short' out.txt && fail "a text file said to fail verification"
[ "$(st "$ins" --json g.el)" = 1 ] || fail "--json: a text file did not exit 1"
grep -q '"file": "text", "description": "a text file, not HDF5"' out.txt ||
    fail "--json: a text file: $(cat out.txt)"

# ---- outputs and graphs -------------------------------------------------------------
"$b/ember-gen" blobs --n 20 --d 2 --k 2 --seed 3 --output multi.h5:/a/b --quiet > gen1.txt
grep -qx 'ember-gen: multi.h5:/a/b: 20 points in 2 dimensions, 2 clusters' gen1.txt ||
    fail "ember-gen blobs does not say what it wrote on stdout: $(cat gen1.txt)"
"$b/ember-gen" blobs --n 20 --d 2 --k 2 --seed 3 --output multi.h5:/a/c --quiet > /dev/null
[ "$(st "$ins" multi.h5)" = 0 ] || fail "an ember-gen output did not exit 0: $(cat out.txt)"
grep -q 'something else' out.txt && fail "ember-gen's file called another program's"
grep -q '^multi.h5: verified: not a checkpoint: an ember-gen output (/a/b, /a/c); with its own provenance: /a/c (ember-gen)$' out.txt ||
    fail "multi.h5: $(cat out.txt)"
grep -q 'generator=blobs' out.txt || fail "multi.h5: no parameters shown: $(cat out.txt)"
# Started with SIGCHLD ignored (as some job runners leave it, across exec),
# the child that walks such a file was reaped by the kernel: ember-inspect
# waited its 60 s for it and called the file damaged (exit 1). A watchdog
# ends a run that hangs.
irc=0
timeout -s KILL 50 bash -c "trap '' CHLD; exec \"\$0\" multi.h5" "$ins" > out.txt 2>&1 ||
    irc=$?
[ "$irc" = 0 ] && grep -q '^multi.h5: verified: not a checkpoint' out.txt ||
    fail "with SIGCHLD ignored: exit $irc: $(cat out.txt)"

"$b/ember-gen" kron --scale 4 --seed 9 --output k.el --quiet > gen2.txt
grep -qx 'ember-gen: k.el: 16 vertices, 256 edges (duplicates and self-loops included)' gen2.txt ||
    fail "ember-gen kron .el does not say what it wrote on stdout: $(cat gen2.txt)"
"$b/ember-gen" kron --scale 4 --seed 9 --output k.h5 --quiet > gen3.txt
grep -q '^ember-gen: k.h5: 16 vertices, [0-9]* distinct edges (of 256 generated)$' gen3.txt ||
    fail "ember-gen kron .h5: $(cat gen3.txt)"
"$b/ember-pagerank" --input k.el --output pr.h5 --quiet > /dev/null
"$b/ember-convert" k.el conv.h5 --quiet > /dev/null

[ "$(st "$ins" --json pr.h5 conv.h5 k.h5 multi.h5)" = 0 ] || fail "--json on outputs: $(cat out.txt err.txt)"
awk -f "$json_check" out.txt || fail "--json on outputs is not valid JSON"
grep -q '^{"path": "pr.h5", "readable": true, "verified": true, "error": "", "file": "ember", "description": "an ember-pagerank output (/ranks)"' out.txt ||
    fail "--json pr.h5: $(grep pr.h5 out.txt)"
grep '"pr.h5"' out.txt | grep -q '"program": "ember-pagerank"' || fail "--json pr.h5: no program"
grep '"conv.h5"' out.txt | grep -q '"description": "an ember graph (HDF5 CSR, from ember-convert)"' ||
    fail "--json conv.h5: $(grep conv.h5 out.txt)"

# ember-convert's and ember-gen's provenance parameters (as --json shows them)
line=$(grep '"conv.h5"' out.txt)
xxh=$(grep '"pr.h5"' out.txt | sed -n 's/.*"input.xxh3": "\([0-9a-f]*\)".*/\1/p')
[ -n "$xxh" ] || fail "pr.h5 records no input.xxh3"
for want in "\"input.xxh3\": \"$xxh\"" "\"input.bytes\": \"$(wc -c < k.el | tr -d ' ')\"" \
            '"info.input.path": "' '"input_format": "el"' '"undirected": "0"' '"relabel": "0"'; do
    case "$line" in *"$want"*) ;; *) fail "conv.h5 parameters lack $want: $line" ;; esac
done
case "$line" in *'"partitions"'*|*'"input": '*) fail "conv.h5 parameters: $line" ;; esac
line=$(grep '"k.h5"' out.txt)
for want in '"generator": "kron"' '"scale": "4"' '"edge_factor": "16"' '"seed": "9"'; do
    case "$line" in *"$want"*) ;; *) fail "k.h5 parameters lack $want: $line" ;; esac
done
case "$line" in *'"partitions"'*) fail "k.h5 parameters: $line" ;; esac

# A directory holding outputs and a text file: the worst status, 1.
mkdir mixed
cp pr.h5 mixed/ckpt-000000000001.h5
cp g.el mixed/ckpt-000000000002.h5
[ "$(st "$ins" mixed)" = 1 ] || fail "a directory with a text file did not exit 1"

# A damaged output is damaged, wherever it lies: the tool once told "no
# checkpoint inside" from the library's message, which holds the path, so
# a directory named after that message passed a damaged file as verified.
mkdir -p "not an ember checkpoint"
cp pr.h5 "not an ember checkpoint/pr.h5"
printf '\001' | dd of="not an ember checkpoint/pr.h5" bs=1 seek=3000 conv=notrunc 2> /dev/null
[ "$(st "$ins" "not an ember checkpoint/pr.h5")" = 1 ] || fail "a damaged output passed: $(cat out.txt)"
grep -q "FAILS VERIFICATION" out.txt || fail "a damaged output: $(cat out.txt)"

# The copy a killed change of a file left beside it (h5edit.c) is named as
# such, and the file it was made for; a file of another name, the same
# bytes, is not.
cp "not an ember checkpoint/pr.h5" pr.h5.ember-edit-4242-0
[ "$(st "$ins" pr.h5.ember-edit-4242-0)" = 1 ] || fail "a leftover copy passed: $(cat out.txt)"
grep -q "^  note:        the copy a killed change of pr.h5 left beside it" out.txt ||
  fail "a leftover copy: $(cat out.txt)"
"$ins" --json pr.h5.ember-edit-4242-0 > out.json || true
grep -q '"file": "damaged"' out.json && grep -q 'a killed change of pr.h5' out.json ||
  fail "a leftover copy, json: $(cat out.json)"
cp pr.h5.ember-edit-4242-0 pr.h5.ember-edit-x
[ "$(st "$ins" pr.h5.ember-edit-x)" = 1 ] || fail "a damaged file passed"
grep -q "note:" out.txt && fail "another name taken for a leftover copy: $(cat out.txt)"

# ---- --help ------------------------------------------------------------------------------
"$ins" --help > help.txt
grep -q '75' help.txt && fail "--help names exit 75: $(tail -6 help.txt)"
grep -q 'other errors' help.txt && fail "--help ends with the generic exit statuses"
tail -6 help.txt | grep -q '^exit status: 0 every file verifies' || fail "--help: $(tail -6 help.txt)"
echo "test_inspect_files: PASS"
