#!/usr/bin/env bash
# A resume never returns a result the command as given would not: the
# stopping rule is part of the run.
#   - --tolerance is in every program's parameters: a checkpoint made under
#     another tolerance is another run's (exit 2, naming it), unless
#     --force-resume says to go on anyway (and then the stop is decided
#     again, and the output records the forcing);
#   - a checkpoint past --iterations is refused (exit 2, naming both
#     counts), for PageRank and k-means;
#   - a checkpoint short of --iterations goes on to it, to the bits of a run
#     never stopped.
set -uo pipefail
bin=${EMBER_BIN:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "test_resume_stopping_rule: FAIL: $*" >&2; exit 1; }

"$bin/ember-gen" kron --scale 10 --seed 5 --output g.el --quiet || fail "gen"
"$bin/ember-gen" blobs --n 20000 --d 2 --k 3 --seed 5 --output p.csv --quiet || fail "gen p"
pr=("$bin/ember-pagerank" --input g.el --damping 0.99 --quiet)

# status WANT ARGS...: runs ARGS, stderr in err.txt, and checks the exit
status() {
    local want=$1
    shift
    "$@" > /dev/null 2> err.txt
    local st=$?
    [ "$st" -eq "$want" ] || fail "$*: exit $st, wanted $want: $(cat err.txt)"
}

# 1. Converged at the default tolerance; the same checkpoint asked to go on
#    with --tolerance 0 is another run's.
status 0 "${pr[@]}" --checkpoint-dir ck1 --checkpoint-every 3 --output a.h5
status 2 "${pr[@]}" --checkpoint-dir ck1 --checkpoint-every 3 --tolerance 0 \
    --iterations 200 --output b.h5
grep -q "tolerance" err.txt || fail "the refusal does not name the tolerance: $(cat err.txt)"
[ ! -e b.h5 ] || fail "a refused resume wrote its output"
status 0 "${pr[@]}" --checkpoint-dir ck1 --checkpoint-every 3 --tolerance 0 \
    --iterations 200 --output b.h5 --force-resume
# The restored "converged" was decided under the other tolerance: the
# forced run decides again and goes on (it stopped at once, exit 0, with
# the old ranks labelled tolerance=0), and its output says it was forced.
[ -e ck1/ckpt-000000000200.h5 ] || fail "the forced resume did not go on to 200: $(ls ck1)"
if command -v h5dump > /dev/null; then
    h5dump -a forced_resume b.h5 2> /dev/null | grep -q "parameters differ: tolerance=" ||
        fail "the forced output has no forced_resume attribute"
    h5dump -a forced_resume a.h5 > /dev/null 2>&1 && fail "an unforced output says forced"
fi

# 2. Stopped at 20 of 60 (a checkpoint at 20): a run of 10 cannot come from
#    it; a run of 60 goes on, to the bits of a run never stopped.
status 75 "${pr[@]}" --checkpoint-dir ck2 --checkpoint-every 5 --tolerance 0 \
    --iterations 60 --stop-at 20
status 2 "${pr[@]}" --checkpoint-dir ck2 --checkpoint-every 5 --tolerance 0 \
    --iterations 10 --output c10.h5
grep -q -- "--iterations 10: the checkpoint in ck2 is at iteration 20" err.txt ||
    fail "the refusal does not name both counts: $(cat err.txt)"
[ ! -e c10.h5 ] || fail "a refused resume wrote its output"
# --iterations 0 is a count too (the initial state), not "no limit"
status 2 "${pr[@]}" --checkpoint-dir ck2 --checkpoint-every 5 --tolerance 0 \
    --iterations 0 --output c0.h5
grep -q -- "--iterations 0: the checkpoint in ck2 is at iteration 20" err.txt ||
    fail "--iterations 0: the refusal does not name both counts: $(cat err.txt)"
status 0 "${pr[@]}" --checkpoint-dir ck2 --checkpoint-every 5 --tolerance 0 \
    --iterations 60 --output c60.csv
status 0 "${pr[@]}" --tolerance 0 --iterations 60 --output f60.csv
cmp -s c60.csv f60.csv || fail "the resumed ranks differ from a run never stopped"

# 3. k-means the same way.
km=("$bin/ember-kmeans" --input p.csv --k 8 --init random --seed 3 --tolerance 0 --quiet)
status 75 "${km[@]}" --checkpoint-dir ck3 --checkpoint-every 2 --iterations 30 --stop-at 8
status 2 "${km[@]}" --checkpoint-dir ck3 --checkpoint-every 2 --iterations 5 --output k.csv
grep -q -- "--iterations 5: the checkpoint in ck3 is at iteration 8" err.txt ||
    fail "k-means: the refusal does not name both counts: $(cat err.txt)"
status 0 "${km[@]}" --checkpoint-dir ck3 --checkpoint-every 2 --iterations 30 --output k.csv
status 0 "${km[@]}" --iterations 30 --output kf.csv
cmp -s k.csv kf.csv || fail "k-means: resumed labels differ from a run never stopped"
cmp -s k.centroids.csv kf.centroids.csv || fail "k-means: resumed centroids differ"
echo "test_resume_stopping_rule: ok"
