#!/usr/bin/env bash
# What a restart says is what happened: a resume refused (a checkpoint past
# the --iterations asked for) is not first announced as "resumed from", and
# a restart from iteration 0 because no checkpoint was usable says so after
# the skipped files' warnings, even under --quiet (found by a newcomer's
# campaign: a run that started over looked resumed); a --stop-at that the
# resumed run is past says it stops nothing.
set -uo pipefail
bin=${EMBER_BIN:?}
src=${EMBER_SRC:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "test_loop_resume_said: FAIL: $*" >&2; exit 1; }

args=(--input "$src/data/karate.el" --undirected --tolerance 0 --checkpoint-dir ck
      --checkpoint-every 5 --checkpoint-sync)
"$bin/ember-pagerank" "${args[@]}" --iterations 10 --quiet > /dev/null || fail "first run"
st=0
"$bin/ember-pagerank" "${args[@]}" --iterations 5 > /dev/null 2> err.txt || st=$?
[ "$st" -eq 2 ] || fail "a checkpoint past --iterations: exit $st: $(cat err.txt)"
grep -q "at iteration 10, past it" err.txt || fail "refusal: $(cat err.txt)"
grep -q "resumed from" err.txt && fail "a refused resume said it resumed: $(cat err.txt)"

# every checkpoint damaged: each skipped, then the start over said
for f in ck/ckpt-*.h5; do truncate -s 3000 "$f"; done
"$bin/ember-pagerank" "${args[@]}" --iterations 10 --quiet > /dev/null 2> err.txt ||
    fail "a start over: $(cat err.txt)"
[ "$(grep -c "skipping checkpoint" err.txt)" -eq 2 ] || fail "skipped: $(cat err.txt)"
grep -q "no checkpoint in ck is usable (2 rejected above): starting from iteration 0" err.txt ||
    fail "the start over is not said: $(cat err.txt)"
grep -q "resumed from" err.txt && fail "a start over said it resumed: $(cat err.txt)"

# --stop-at at or before the iteration resumed at stops nothing: said
rm -rf ck
"$bin/ember-pagerank" "${args[@]}" --iterations 40 --stop-at 10 --quiet > /dev/null 2>&1
[ $? -eq 75 ] || fail "--stop-at 10 did not stop"
"$bin/ember-pagerank" "${args[@]}" --iterations 40 --stop-at 5 > /dev/null 2> err.txt ||
    fail "the rerun: $(cat err.txt)"
grep -q -- "--stop-at 5: the run resumed at iteration 10, not before it, so it runs on" err.txt ||
    fail "--stop-at passed: $(cat err.txt)"
echo "test_loop_resume_said: PASS"
