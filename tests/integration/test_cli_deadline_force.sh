#!/usr/bin/env bash
# The common flags of issue 3 through a real program:
# --deadline: a run with a wall-clock limit checkpoints and exits 75 before
# the limit, and the same command resumes it to the uninterrupted result.
# --force-resume: a resume with other parameters is refused (exit 2, the
# message names the difference) unless forced, when the state types match.
set -euo pipefail
bin=${EMBER_BIN:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

"$bin/ember-gen" kron --scale 14 --edge-factor 16 --seed 5 --output g.h5 --quiet
# The uninterrupted run must take well over the 1 s deadline on whatever
# machine runs this: start at 3000 iterations and grow until it takes 3 s.
iters=3000
while :; do
    args=(--input g.h5 --iterations "$iters" --tolerance 0 --quiet --threads 2)
    t0=$(date +%s%N)
    "$bin/ember-pagerank" "${args[@]}" --output full.csv
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    [ "$ms" -lt 3000 ] && [ "$iters" -lt 3000000 ] || break
    iters=$(( iters * (3500 / (ms + 1) + 1) ))
done

# A deadline of 1 s (1s: a bare 1 means a minute, as in SLURM) on a run of
# several seconds: exit 75 within the limit
# plus the last iteration and checkpoint, then resume to the same ranks.
start=$(date +%s%N)
set +e
"$bin/ember-pagerank" "${args[@]}" --output part.csv --checkpoint-dir ck \
    --checkpoint-every 1000000 --deadline 1s 2> err.txt
st=$?
set -e
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$st" -eq 75 ] || fail "--deadline 1s: exit $st, wanted 75 ($(cat err.txt))"
[ "$elapsed_ms" -lt 5000 ] || fail "--deadline 1s took ${elapsed_ms} ms"
ls ck/ckpt-*.h5 > /dev/null || fail "no checkpoint written at the deadline"
[ ! -e part.csv ] || fail "an interrupted run wrote its output"
# (The deadline counts from each run's start, load included: 10 s leaves a
# loaded machine enough iterations a run to finish in a few resumes.)
until "$bin/ember-pagerank" "${args[@]}" --output part.csv --checkpoint-dir ck \
        --checkpoint-every 1000000 --deadline 10s 2> err.txt; do
    [ $? -eq 75 ] || fail "resume under a deadline failed: $(cat err.txt)"
done
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
