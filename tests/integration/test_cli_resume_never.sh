#!/usr/bin/env bash
# --resume never (issue 9):
# - interrupted, it says what is true: the same command would start over,
#   --resume auto resumes (it used to say "run the same command again");
# - the new run owns the directory: once its first checkpoint commits, the
#   older run's files are gone, even when it writes fewer than --keep, so a
#   later --resume auto resumes this run and not the old one.
set -uo pipefail
bin=${EMBER_BIN:?}
src=${EMBER_SRC:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "test_cli_resume_never: FAIL: $*" >&2; exit 1; }

g=$src/data/karate.el
# An older run with other parameters leaves ckpt 4, 5, 6.
"$bin/ember-pagerank" --input "$g" --undirected --damping 0.5 --tolerance 0 --iterations 6 \
    --checkpoint-dir ck --checkpoint-every 1 --keep 3 --quiet --output old.csv \
    || fail "old run"
[ "$(ls ck/ckpt-*.h5 | wc -l)" -eq 3 ] || fail "the old run should leave 3 files"

# The new run, --resume never, stopped by its deadline: one checkpoint for
# the cost, one at the stop; far fewer than --keep 10.
args=(--input "$g" --undirected --tolerance 0 --iterations 100000000 --checkpoint-dir ck
      --checkpoint-every 1000000000 --keep 10 --quiet --output new.csv)
"$bin/ember-pagerank" "${args[@]}" --resume never --deadline 2s 2> err.txt
st=$?
[ "$st" -eq 75 ] || fail "--resume never with a deadline: exit $st, wanted 75: $(cat err.txt)"
grep -q "resume never" err.txt || fail "the message does not mention --resume never: $(cat err.txt)"
grep -q "start over" err.txt || fail "the message does not say the same command starts over: $(cat err.txt)"
grep -q -- "--resume auto" err.txt || fail "the message does not say how to resume: $(cat err.txt)"
for it in 4 5 6; do
    [ ! -e "ck/ckpt-00000000000$it.h5" ] || fail "the old run's ckpt $it is still there: $(ls ck)"
done
last=$(ls ck/ckpt-*.h5 | tail -n 1 | sed 's/.*ckpt-0*\([0-9]*\)\.h5/\1/')
[ -n "$last" ] || fail "no checkpoint of the new run"

# --resume auto now resumes the new run (its parameters: damping 0.85).
"$bin/ember-pagerank" "${args[@]}" --resume auto --deadline 2s \
    2> err.txt
st=$?
[ "$st" -eq 75 ] || [ "$st" -eq 0 ] || fail "--resume auto after the never run: exit $st: $(cat err.txt)"
grep -q "parameters differ" err.txt && fail "--resume auto found the old run's files: $(cat err.txt)"
# (its newest checkpoint now: a resume asked to stop before it is refused)
last=$(ls ck/ckpt-*.h5 | tail -n 1 | sed 's/.*ckpt-0*\([0-9]*\)\.h5/\1/')
"$bin/ember-pagerank" --input "$g" --undirected --tolerance 0 --iterations "$last" \
    --checkpoint-dir ck --resume require --quiet --output again.csv 2> err.txt \
    || fail "resume require after the never run: $(cat err.txt)"
# require, from a directory that is not there: exit 2, and none is made
st=0
"$bin/ember-pagerank" --input "$g" --checkpoint-dir nowhere/ck --resume require \
    --quiet > /dev/null 2> err.txt || st=$?
[ "$st" -eq 2 ] && grep -q "no such directory, and --resume require needs" err.txt ||
    fail "resume require, no directory: exit $st: $(cat err.txt)"
[ ! -e nowhere ] || fail "resume require made the directory it refused"
echo "resume never: ok"
