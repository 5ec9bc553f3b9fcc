#!/usr/bin/env bash
# The Python snippets of docs/formats.md and docs/checkpoint-format.md that
# read a checkpoint (those naming ck/ckpt-000000000040.h5) run as written
# on an ember-pagerank --relabel run's checkpoint, whose vertex_ids are the
# input's own ids (large and sparse, not 0..n-1), and the ranks_by_id they
# build are the run's output ranks by id (the final checkpoint holds the
# final state). Needs /usr/bin/python3 with h5py (python3-h5py); without it
# the test says so and passes, as test_h5_self_describing.sh does. Also
# docs/streaming.md's ember_stream_hash in Python against a state snapshot.
set -euo pipefail
: "${EMBER_BIN:?}" "${EMBER_SRC:?}"
export LC_ALL=C
T=$(mktemp -d "${TMPDIR:-/tmp}/ember-snippets.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"
fail() { echo "test_doc_snippets: FAIL: $*" >&2; exit 1; }
py=/usr/bin/python3
if ! [ -x "$py" ] || ! "$py" -c 'import h5py' 2> /dev/null; then
    echo "test_doc_snippets: h5py is not installed for $py (apt-get install" \
         "python3-h5py): SKIPPED"
    exit 0
fi

printf '500 300\n300 100\n4000000000000 77\n77 500\n100 4000000000000\n' > sparse.el
"$EMBER_BIN/ember-pagerank" --input sparse.el --relabel --tolerance 0 --iterations 40 \
    --checkpoint-dir ck --checkpoint-every 10 --keep 10 --output pr.h5 --quiet > /dev/null ||
    fail "the pagerank run"
[ -f ck/ckpt-000000000040.h5 ] || fail "no checkpoint at iteration 40: $(ls ck)"

"$py" - "$EMBER_SRC/docs/formats.md" "$EMBER_SRC/docs/checkpoint-format.md" <<'EOF' ||
import contextlib, io, re, sys
import h5py

with h5py.File("pr.h5", "r") as f:
    want = dict(zip(f["ids"][:].tolist(), f["ranks"][:].tolist()))
found = 0
for doc in sys.argv[1:]:
    text = open(doc, encoding="utf-8").read()
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        if "ck/ckpt-000000000040.h5" not in block:
            continue
        found += 1
        env = {}
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(block, env)
        except Exception as e:
            sys.exit(f"{doc}: the snippet fails: {type(e).__name__}: {e}\n{block}")
        got = env.get("ranks_by_id")
        if got != want:
            sys.exit(f"{doc}: ranks_by_id {got!r} is not the output's {want!r}")
if found < 2:
    sys.exit(f"found {found} checkpoint snippets, not one in each document")
EOF
    fail "a documented snippet does not work (above)"

# docs/streaming.md's ember_stream_hash in Python gives the keys of a
# word count's state snapshot (no string there was placed by probing)
mkdir -p ws/src
printf 'alpha beta gamma alpha\n"q" x,y \xc3\xa9t\xc3\xa9 a-string-longer-than-sixteen\n\n' > ws/src/a.txt
"$EMBER_BIN/ember-stream-wordcount" --source ws/src --checkpoint-location ws/loc --sink ws/out \
    --trigger once --quiet || fail "the word count"
"$py" - "$EMBER_SRC/docs/streaming.md" ws/loc/state/0.h5 <<'EOF' ||
import re, sys
import h5py

doc = open(sys.argv[1], encoding="utf-8").read()
blocks = [b for b in re.findall(r"```python\n(.*?)```", doc, re.S) if "def stream_hash" in b]
assert len(blocks) == 1, f"{len(blocks)} stream_hash snippets"
env = {}
exec(blocks[0], env)
with h5py.File(sys.argv[2], "r") as f:
    rec, text = f["datasets/state"][:], bytes(f["blobs/text"][:])
assert len(rec) == 7, len(rec)
for r in rec:
    word = text[r["offset"]:r["offset"] + r["length"]]
    if env["stream_hash"](word) != r["key"]:
        sys.exit(f"stream_hash({word!r}) is not the state's key {r['key']:x}")
EOF
    fail "docs/streaming.md's stream_hash does not give the state's keys (above)"
echo "test_doc_snippets: PASS"
