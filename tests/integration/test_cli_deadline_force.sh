#!/usr/bin/env bash
# The common flags of issue 3 through a real program:
# --deadline: a run with a wall-clock limit checkpoints and exits 75 before
# the limit, and the same run resumes it to the uninterrupted result.
# --force-resume: a resume with other parameters is refused (exit 2, the
# message names the difference) unless forced, when the state types match.
set -euo pipefail
bin=${EMBER_BIN:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

"$bin/ember-gen" kron --scale 14 --edge-factor 16 --seed 5 --output g.h5 --quiet
# A deadline of 1 s (1s: a bare 1 means a minute, as in SLURM) on a run
# far longer than any machine finishes in 1 s: exit 75 within the limit
# plus the last iteration and checkpoint.
big=(--input g.h5 --iterations 100000000 --tolerance 0 --quiet --threads 2)
start=$(date +%s%N)
set +e
"$bin/ember-pagerank" "${big[@]}" --output part.csv --checkpoint-dir ck \
    --checkpoint-every 1000000000 --deadline 1s 2> err.txt
st=$?
set -e
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$st" -eq 75 ] || fail "--deadline 1s: exit $st, wanted 75 ($(cat err.txt))"
grep -q "stopped for --deadline after iteration" err.txt || fail "--deadline 1s: $(cat err.txt)"
[ "$elapsed_ms" -lt 5000 ] || fail "--deadline 1s took ${elapsed_ms} ms"
ls ck/ckpt-*.h5 > /dev/null || fail "no checkpoint written at the deadline"
[ ! -e part.csv ] || fail "an interrupted run wrote its output"
# The iterations done are not part of the run's identity: the same run
# with 300 iterations more than the deadline left resumes (under a
# deadline again) to the ranks of an uninterrupted run of that length.
k=$(ls ck/ckpt-*.h5 | tail -n 1 | sed 's/.*ckpt-0*\([0-9]*\)\.h5/\1/')
[ -n "$k" ] && [ "$k" -gt 0 ] || fail "no iteration in the checkpoint name: $(ls ck)"
args=(--input g.h5 --iterations $((k + 300)) --tolerance 0 --quiet --threads 2)
until "$bin/ember-pagerank" "${args[@]}" --output part.csv --checkpoint-dir ck \
        --checkpoint-every 1000000000 --deadline 10s 2> err.txt; do
    [ $? -eq 75 ] || fail "resume under a deadline failed: $(cat err.txt)"
done
"$bin/ember-pagerank" "${args[@]}" --output full.csv
cmp -s full.csv part.csv || fail "ranks after deadline stops differ from an uninterrupted run"

# Other parameters on the same checkpoints: refused, named, then forced.
rm -rf ck
set +e
"$bin/ember-pagerank" --input g.h5 --iterations 5 --tolerance 0 --quiet \
    --checkpoint-dir ck --checkpoint-every 1 --output a.csv
"$bin/ember-pagerank" --input g.h5 --iterations 10 --tolerance 0 --quiet \
    --checkpoint-dir ck --damping 0.9 --output b.csv 2> err.txt
st=$?
set -e
[ "$st" -eq 2 ] || fail "resume with another damping: exit $st, wanted 2"
grep -q "damping" err.txt || fail "the refusal does not name damping: $(cat err.txt)"
"$bin/ember-pagerank" --input g.h5 --iterations 10 --tolerance 0 --quiet \
    --checkpoint-dir ck --damping 0.9 --force-resume --output b.csv 2> err.txt \
    || fail "--force-resume was refused: $(cat err.txt)"
[ -s b.csv ] || fail "--force-resume wrote no output"
echo "deadline and force-resume: ok"
