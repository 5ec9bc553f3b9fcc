#!/usr/bin/env bash
# test_ckpt_tools.sh: the whole-file checksum header (docs/checkpoint-format.md)
# leaves ember's files readable by HDF5's own tools, and files without it
# are handled as documented.
#
# - h5dump, h5ls read a sealed checkpoint (its 512-byte user block skipped);
#   h5py too, when /usr/bin/python3 has it (otherwise that part is skipped
#   with a message).
# - A checkpoint without the header (h5unjam strips it, giving what ember
#   0.1.0 wrote) is refused unread: ember-inspect fails it, a resume skips
#   it with "cannot be verified" and resumes from the older good one.
# - A graph file from ember-convert is sealed and verified before parsing:
#   damaged, it is refused naming the checksum; stripped of its header (as
#   an h5py-made file is), it is read as before, with the same ranks.
set -euo pipefail
: "${EMBER_BIN:?}" "${EMBER_SRC:?}"
export LC_ALL=C
T=$(mktemp -d "${TMPDIR:-/tmp}/ember-tools.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"
fail() { echo "test_ckpt_tools: FAIL: $*" >&2; exit 1; }
pr=$EMBER_BIN/ember-pagerank
ins=$EMBER_BIN/ember-inspect
args=(--input "$EMBER_SRC/data/karate.el" --undirected --output out.csv)

"$pr" "${args[@]}" --quiet && mv out.csv ref.csv
"$pr" "${args[@]}" --quiet --checkpoint-dir ck --checkpoint-every 10 --keep 10
ck=ck/ckpt-000000000020.h5
[ "$(head -c 8 "$ck")" = EMBERSUM ] || fail "no checksum header in $ck"

# HDF5's tools skip the user block.
h5dump -A "$ck" >dump.txt || fail "h5dump -A failed on $ck"
grep -q '"ember-checkpoint"' dump.txt || fail "h5dump does not show the format attribute"
h5dump -d /datasets/ranks "$ck" >ranks.txt || fail "h5dump -d /datasets/ranks failed"
grep -q 'DATASPACE  SIMPLE { ( 34 ) /' ranks.txt || fail "h5dump: ranks are not 34 values"
h5ls -r "$ck" | grep -q '^/scalars/residual' || fail "h5ls does not list /scalars/residual"

if /usr/bin/python3 -c 'import h5py' 2>/dev/null; then
    /usr/bin/python3 - "$ck" <<'EOF' || fail "h5py cannot read the checkpoint"
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    assert f.attrs["format"] in (b"ember-checkpoint", "ember-checkpoint")
    assert f["datasets/ranks"].shape == (34,)
    assert abs(float(f["datasets/ranks"][:].sum()) - 1.0) < 1e-6
    assert f.userblock_size == 512
EOF
    echo "test_ckpt_tools: h5py reads the checkpoint"
else
    echo "test_ckpt_tools: h5py is not installed for /usr/bin/python3: the h5py check is skipped"
fi

# Without the header: what ember 0.1.0 wrote. Never parsed, always skipped.
h5unjam -i "$ck" -o old.h5 >/dev/null || fail "h5unjam"
[ "$(head -c 4 old.h5 | od -An -c | tr -d ' ')" = '211HDF' ] || fail "h5unjam left a user block"
h5dump -A old.h5 >/dev/null || fail "the stripped copy is not HDF5"
set +e
"$ins" old.h5 >ins.txt 2>&1; st=$?
set -e
[ "$st" -eq 1 ] || fail "ember-inspect on a file without the header: exit $st"
grep -q 'cannot be verified' ins.txt || fail "ember-inspect does not say why: $(cat ins.txt)"
mkdir rk && cp ck/ckpt-000000000010.h5 rk/ && cp old.h5 rk/ckpt-000000000020.h5
"$pr" "${args[@]}" --checkpoint-dir rk --checkpoint-every 10 2>log.txt >/dev/null ||
    fail "resume past a file without the header: $(cat log.txt)"
grep -q "skipping checkpoint rk/ckpt-000000000020.h5: .*no ember checksum header.*cannot be verified" log.txt ||
    fail "no skip message: $(cat log.txt)"
grep -q "resumed from rk/ckpt-000000000010.h5 " log.txt || fail "resume message: $(cat log.txt)"
cmp -s ref.csv out.csv || fail "output after the skip differs"

# Graph files: sealed by ember-convert, verified before parsing.
"$EMBER_BIN/ember-convert" "$EMBER_SRC/data/karate.el" k.h5 --quiet 2>/dev/null ||
    "$EMBER_BIN/ember-convert" --input "$EMBER_SRC/data/karate.el" --output k.h5 --quiet
[ "$(head -c 8 k.h5)" = EMBERSUM ] || fail "ember-convert wrote no checksum header"
h5dump -A k.h5 >/dev/null || fail "h5dump cannot read the graph file"
"$pr" --input k.h5 --undirected --output g1.csv --quiet || fail "pagerank of k.h5"
cmp -s ref.csv g1.csv || fail "pagerank of the .h5 graph differs from the .el"
cp k.h5 bad.h5
size=$(stat -c %s bad.h5)
printf 'Z' | dd of=bad.h5 bs=1 seek=$((size / 2)) conv=notrunc status=none
set +e
"$pr" --input bad.h5 --undirected --output g2.csv --quiet 2>err.txt; st=$?
set -e
[ "$st" -ne 0 ] && [ "$st" -lt 128 ] || fail "a damaged graph file: exit $st"
grep -q "bad.h5: content checksum mismatch" err.txt || fail "unclear: $(cat err.txt)"
[ ! -e g2.csv ] || fail "output written from a damaged graph"
h5unjam -i k.h5 -o plain.h5 >/dev/null || fail "h5unjam of the graph"
"$pr" --input plain.h5 --undirected --output g3.csv --quiet || fail "a graph without the header is refused"
cmp -s ref.csv g3.csv || fail "pagerank of the header-less graph differs"
echo "test_ckpt_tools: PASS"
