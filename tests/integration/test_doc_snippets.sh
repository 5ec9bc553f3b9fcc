#!/usr/bin/env bash
# The Python snippets of docs/formats.md and docs/checkpoint-format.md that
# read a checkpoint (those naming ck/ckpt-000000000040.h5) run as written
# on an ember-pagerank --relabel run's checkpoint, whose vertex_ids are the
# input's own ids (large and sparse, not 0..n-1), and the ranks_by_id they
# build are the run's output ranks by id (the final checkpoint holds the
# final state). Needs /usr/bin/python3 with h5py (python3-h5py); without it
# the test says so and passes, as test_h5_self_describing.sh does.
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
echo "test_doc_snippets: PASS"
