#!/usr/bin/env bash
# A result continued by --force-resume from a run on another graph is
# checked before it goes out (ember-cc: union-find; ember-sssp: Dijkstra;
# ember-maps: the closed form of its sum). Labels and distances only fall, so an edge removed since left wrong ones
# (and a graph whose degree order changed, values in another vertex order),
# written with exit 0. Refused with exit 2 and no output, also in a later
# plain run of checkpoints that carry the forced one; a forced resume whose
# result is right goes through.
set -euo pipefail
bin=${EMBER_BIN:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "test_forced_checked: FAIL: $*" >&2; exit 1; }

# run EXIT PROGRAM ARGS...: the exit status must be EXIT
run() {
    local want=$1
    shift
    set +e
    "$bin/$1" "${@:2}" > out.txt 2> err.txt
    local st=$?
    set -e
    [ "$st" = "$want" ] || fail "$* exited $st, not $want: $(cat err.txt)"
}

# ember-cc: the bridge 4-5 removed splits the component, whose labels all
# stayed 0 (check_labels finds no vertex holding a larger id than its own)
printf '0 1\n1 2\n2 3\n3 4\n5 6\n6 7\n' > split.el
(cat split.el; echo "4 5") > joined.el
cp joined.el g.el
run 0 ember-cc --input g.el --checkpoint-dir ckc --quiet
cp split.el g.el
run 2 ember-cc --input g.el --checkpoint-dir ckc --force-resume --output l.csv
grep -q "the labels resumed by force are not this graph's components (3 labels" err.txt ||
    fail "cc: $(cat err.txt)"
[ -e l.csv ] && fail "cc: a refused result was written"
# its final checkpoint carries the forced resume: a plain run is refused too
run 2 ember-cc --input g.el --checkpoint-dir ckc --output l.csv
grep -q "the labels resumed by force are not" err.txt || fail "cc carried: $(cat err.txt)"
[ -e l.csv ] && fail "cc carried: a refused result was written"
# the same graph under other parameters: forced, right, written
rm -rf ckc
run 0 ember-cc --input joined.el --checkpoint-dir ckc --partitions 2 --quiet
run 0 ember-cc --input joined.el --checkpoint-dir ckc --partitions 3 --force-resume \
    --output l.csv --verify
grep -q "Verification: PASS" out.txt || fail "cc forced, same graph: $(cat out.txt)"
[ -e l.csv ] || fail "cc forced, same graph: no output"

# ember-sssp: the edge 2-3 removed leaves vertex 3 at 3 (now 20)
printf '0 1 1\n1 2 1\n2 3 1\n0 4 10\n4 3 10\n' > short.el
grep -v '^2 3 ' short.el > long.el
for plan in pull shuffle push; do
    rm -rf cks d.csv
    cp short.el s.el
    run 0 ember-sssp --input s.el --source 0 --plan "$plan" --checkpoint-dir cks --quiet
    cp long.el s.el
    run 2 ember-sssp --input s.el --source 0 --plan "$plan" --checkpoint-dir cks \
        --force-resume --output d.csv
    grep -q "the distances resumed by force are not this graph's" err.txt ||
        fail "sssp $plan: $(cat err.txt)"
    [ -e d.csv ] && fail "sssp $plan: a refused result was written"
    run 2 ember-sssp --input s.el --source 0 --plan "$plan" --checkpoint-dir cks --output d.csv
    grep -q "the distances resumed by force are not this graph's" err.txt ||
        fail "sssp $plan carried: $(cat err.txt)"
    [ -e d.csv ] && fail "sssp $plan carried: a refused result was written"
done
# the same graph under other parameters: forced, right, written
rm -rf cks
run 0 ember-sssp --input short.el --source 0 --checkpoint-dir cks --partitions 2 --quiet
run 0 ember-sssp --input short.el --source 0 --checkpoint-dir cks --partitions 3 \
    --force-resume --output d.csv
grep -q "^3,3$" d.csv || fail "sssp forced, same graph: $(cat d.csv)"

# ember-maps: another --n, forced: the old run's range, refused; other
# partitions, forced: right
rm -rf ckm
run 0 ember-maps --n 1000 --maps 10 --checkpoint-dir ckm --checkpoint-every 2 --quiet
run 2 ember-maps --n 2000 --maps 10 --checkpoint-dir ckm --checkpoint-every 2 --force-resume
grep -q "the data resumed by force is not range(2000) after 10 maps" err.txt ||
    fail "maps: $(cat err.txt)"
grep -q "sum:" out.txt && fail "maps: a refused result was printed"
run 2 ember-maps --n 2000 --maps 12 --checkpoint-dir ckm --checkpoint-every 2 --force-resume
grep -q "the data resumed by force is not range(2000) after 12 maps" err.txt ||
    fail "maps, more maps: $(cat err.txt)"
rm -rf ckm
run 0 ember-maps --n 1000 --maps 10 --checkpoint-dir ckm --checkpoint-every 2 --quiet
run 0 ember-maps --n 1000 --maps 12 --partitions 3 --checkpoint-dir ckm --force-resume --quiet
grep -q "^sum: 511500$" out.txt || fail "maps forced, same data: $(cat out.txt)"
echo "test_forced_checked: PASS"
