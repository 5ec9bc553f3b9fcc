#!/usr/bin/env bash
# ember-cc: --verify on the bundled graphs; exact labels on a small graph
# with several components (isolated vertices, a self-loop, sparse ids);
# the same labels for any thread count; a run stopped early and resumed
# from its checkpoint ends with the labels of an uninterrupted run; long
# paths take a few dozen iterations, not one an edge; and a run stopped
# before the fixpoint claims no component count. --plan afforest: the same
# labels everywhere, in 3 iterations, across thread counts and resumes (its
# own checkpoint, and FastSV's by force).
set -euo pipefail
bin=${EMBER_BIN:?}
src=${EMBER_SRC:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

for g in karate.el dangling.el; do
    "$bin/ember-cc" --input "$src/data/$g" --verify --quiet > v.txt || fail "$g: $(cat v.txt)"
    grep -q "Verification: PASS (1 components" v.txt || fail "$g: $(cat v.txt)"
done

# components {0,3,5} {1,4} {2} {6,7 via 7->6} {8}; vertex 9 isolated but
# named by 9 -> 9
printf '# small\n5 3\n3 0\n4 1\n2 2\n7 6\n9 9\n8 8\n' > small.el
"$bin/ember-cc" --input small.el --verify --quiet --output small.csv > v.txt || fail "$(cat v.txt)"
printf 'vertex,label\n0,0\n1,1\n2,2\n3,0\n4,1\n5,0\n6,6\n7,6\n8,8\n9,9\n' > want.csv
cmp small.csv want.csv || fail "labels: $(cat small.csv)"

# sparse ids with --relabel: labels are original ids
printf '500 300\n300 100\n4000000000000 77\n' > sparse.el
"$bin/ember-cc" --input sparse.el --relabel --quiet --output sparse.csv
printf 'vertex,label\n77,77\n100,100\n300,100\n500,100\n4000000000000,77\n' > want2.csv
cmp sparse.csv want2.csv || fail "relabelled labels: $(cat sparse.csv)"

# a larger graph: thread counts and stop-and-resume
"$bin/ember-gen" kron --scale 14 --edge-factor 4 --seed 9 --output k.h5 --quiet
"$bin/ember-cc" --input k.h5 --verify --quiet --output full.h5 --threads 2 > v.txt || fail "$(cat v.txt)"
"$bin/ember-cc" --input k.h5 --quiet --output t1.csv --threads 1
"$bin/ember-cc" --input k.h5 --quiet --output t3.csv --threads 3
cmp t1.csv t3.csv || fail "labels differ between 1 and 3 threads"
"$bin/ember-cc" --input k.h5 --quiet --output part.csv --iterations 2 --checkpoint-dir ck \
    --checkpoint-every 1 --threads 3
ls ck/ckpt-*.h5 > /dev/null || fail "no checkpoint"
"$bin/ember-cc" --input k.h5 --quiet --output part.csv --checkpoint-dir ck --threads 1 \
    --metrics m.jsonl
cmp t1.csv part.csv || fail "labels after a resume differ"
grep -q '"iteration": 1,' m.jsonl && fail "the resumed run started over"
# --relabel with ids past 2^63: the labels are the original ids, whole
# (they were written as int64: 18446744073709551614 came out as -2)
printf '18446744073709551615 18446744073709551614\n9223372036854775808 5\n' > big.el
"$bin/ember-cc" --input big.el --relabel --quiet --output big.csv || fail "big ids"
printf 'vertex,label\n5,5\n9223372036854775808,5\n18446744073709551614,18446744073709551614\n18446744073709551615,18446744073709551614\n' > want.csv
cmp big.csv want.csv || fail "big ids: $(cat big.csv)"
if command -v h5dump > /dev/null; then
    "$bin/ember-cc" --input big.el --relabel --quiet --output big.h5 || fail "big ids h5"
    h5dump -d /labels big.h5 > h5.txt
    grep -q "H5T_STD_U64LE" h5.txt || fail "big ids: /labels is not u64: $(cat h5.txt)"
    grep -q "(0): 5, 5, 18446744073709551614, 18446744073709551614" h5.txt \
        || fail "big ids: /labels: $(cat h5.txt)"
fi

# Long paths: plain min-label propagation moves a label one edge an
# iteration (n iterations for a path of n vertices); hooking and jumping
# take about log2(n). 20,001 vertices, ids along the path (0 at one end)
# and shuffled (a prime stride, where jumping alone took 1,037), both with
# --relabel too.
awk 'BEGIN { for (i = 0; i < 20000; i++) print i, i + 1 }' > path.el
awk 'BEGIN { for (i = 0; i < 20000; i++) print (i * 7919) % 20001, ((i + 1) * 7919) % 20001 }' \
    > shuffled.el
for g in path.el shuffled.el; do
    for r in "" --relabel; do
        "$bin/ember-cc" --input "$g" $r --verify --output "p.csv" --metrics pm.jsonl > v.txt \
            2> /dev/null || fail "$g $r: $(cat v.txt)"
        grep -q "Verification: PASS (1 components" v.txt || fail "$g $r: $(cat v.txt)"
        it=$(sed -n 's/.* 1 components after \([0-9]*\) iterations$/\1/p' v.txt)
        [ -n "$it" ] && [ "$it" -le 30 ] || fail "$g $r: $(cat v.txt) (expected <= 30 iterations)"
        least=$(awk -F, 'NR == 2 || (NR > 2 && $1 < m) { m = $1 } END { print m }' p.csv)
        awk -F, -v l="$least" 'NR > 1 && $2 != l { exit 1 }' p.csv || fail "$g $r: a label is not $least"
    done
done
# Stopped before the fixpoint: no component count is claimed.
"$bin/ember-cc" --input path.el --iterations 3 --output p3.h5 > v.txt 2> /dev/null
grep -q "NOT converged after 3 iterations" v.txt || fail "unconverged: $(cat v.txt)"
grep -q "[0-9] components" v.txt && fail "unconverged run counts components: $(cat v.txt)"
if command -v h5dump > /dev/null; then
    h5dump -A p3.h5 > h5.txt
    grep -q 'ATTRIBUTE "components"' h5.txt && fail "unconverged output has a components attribute"
fi

# Another graph's checkpoint resumed by force: its labels are not this
# graph's (a label above its vertex's own id) and are refused, exit 2.
printf '9 0\n9 1\n9 2\n9 3\n9 4\n9 5\n9 6\n9 7\n9 8\n8 7\n' > starA.el
printf '0 1\n0 2\n0 3\n0 4\n0 5\n0 6\n0 7\n0 8\n0 9\n1 2\n' > starB.el
"$bin/ember-cc" --input starA.el --iterations 1 --checkpoint-dir ckx --checkpoint-every 1 \
    --quiet > /dev/null
set +e
"$bin/ember-cc" --input starB.el --checkpoint-dir ckx --force-resume --quiet > /dev/null 2> x.err
st=$?
set -e
[ "$st" = 2 ] && grep -q "not a vertex id at most its own" x.err \
    || fail "another graph's labels: exit $st: $(cat x.err)"

# --plan afforest: the labels of FastSV on every graph above
for g in small.el sparse.el big.el k.h5 path.el shuffled.el; do
    r=""
    case $g in sparse.el|big.el) r=--relabel ;; esac
    "$bin/ember-cc" --input "$g" $r --quiet --output fs.csv > /dev/null
    for t in 1 3; do
        "$bin/ember-cc" --input "$g" $r --plan afforest --threads $t --verify --quiet \
            --output af.csv > v.txt || fail "afforest $g: $(cat v.txt)"
        grep -q "Verification: PASS" v.txt || fail "afforest $g: $(cat v.txt)"
        grep -q "after 3 iterations" v.txt || fail "afforest $g: $(cat v.txt)"
        cmp fs.csv af.csv || fail "afforest $g --threads $t: labels differ from FastSV's"
    done
done
# each iteration's labels (a run stopped there) are the same at 1 and 3
# threads; stopped after each iteration and resumed: the same labels; a
# FastSV checkpoint resumed by force under afforest ends the same, going on
# from its iteration
"$bin/ember-gen" kron --scale 16 --edge-factor 4 --seed 5 --output k16.h5 --quiet
for g in k16.h5 shuffled.el; do
    for stop in 1 2; do
        for t in 1 3; do
            "$bin/ember-cc" --input $g --plan afforest --iterations $stop --threads $t \
                --quiet --output "it$stop.$t.csv" > /dev/null
        done
        cmp "it$stop.1.csv" "it$stop.3.csv" || fail "afforest $g: iteration $stop differs by threads"
    done
done
# (on the path the second neighbours join what the first left apart)
cmp it1.1.csv it2.1.csv && fail "afforest: iterations 1 and 2 gave the same labels"
for stop in 1 2; do
    rm -rf cka
    "$bin/ember-cc" --input k.h5 --plan afforest --iterations $stop --checkpoint-dir cka \
        --checkpoint-every 1 --quiet --output a.csv > v.txt
    grep -q "NOT converged after $stop iterations" v.txt || fail "afforest stopped: $(cat v.txt)"
    "$bin/ember-cc" --input k.h5 --plan afforest --checkpoint-dir cka --threads 2 --quiet \
        --output a.csv --metrics am.jsonl > v.txt
    cmp t1.csv a.csv || fail "afforest resumed after $stop: labels differ"
    grep -q "after 3 iterations" v.txt || fail "afforest resumed after $stop: $(cat v.txt)"
    grep -q '"iteration": 1,' am.jsonl && fail "afforest resumed after $stop started over"
done
"$bin/ember-cc" --input shuffled.el --quiet --output fs.csv > /dev/null
for stop in 1 4; do
    rm -rf cka
    "$bin/ember-cc" --input shuffled.el --iterations $stop --checkpoint-dir cka \
        --checkpoint-every 1 --quiet --output a.csv > /dev/null
    "$bin/ember-cc" --input shuffled.el --plan afforest --checkpoint-dir cka --force-resume \
        --quiet --output a.csv > v.txt 2> /dev/null || fail "afforest from FastSV's $stop"
    cmp fs.csv a.csv || fail "afforest from FastSV's iteration $stop: labels differ"
    want=$((stop < 3 ? 3 : stop + 1))
    grep -q "after $want iterations" v.txt || fail "afforest from FastSV's $stop: $(cat v.txt)"
done
# the default plan is not in a checkpoint's parameters: a checkpoint from
# before the plans came resumes
if command -v h5dump > /dev/null; then
    h5dump -a parameters ck/ckpt-*.h5 | grep -q "plan=" && fail "plan=fastsv in the parameters"
    h5dump -a parameters cka/ckpt-*.h5 | grep -q "plan=fastsv" && fail "plan=fastsv in the parameters"
fi

grep -q '"event": "done"' m.jsonl || fail "no done line"
if command -v h5dump > /dev/null; then
    { h5dump -A full.h5 > h5.txt; grep -q 'ATTRIBUTE "components"' h5.txt; } || fail "no components attribute"
fi
echo PASS
