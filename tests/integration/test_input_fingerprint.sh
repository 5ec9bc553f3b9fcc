#!/usr/bin/env bash
# Inputs are identified by content (issue 9): the run's fingerprint holds
# each input's size and XXH3 hash, the path is information only.
# - an identical copy at another path resumes (it used to be refused);
# - the same path with other content is refused with exit 2, naming the
#   file and what changed (size, hash) (it used to resume silently);
# - --force-resume still resumes.
# For ember-pagerank, ember-cc, ember-kmeans (its --init FILE too) and
# ember-sssp.
set -uo pipefail
bin=${EMBER_BIN:?}
src=${EMBER_SRC:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "test_input_fingerprint: FAIL: $*" >&2; exit 1; }

mkdir -p a scratch
cp "$src/data/karate.el" a/g.el
loud=(--undirected --tolerance 0 --checkpoint-dir ck --checkpoint-every 2)
pr=("${loud[@]}" --quiet)

# Reference: 8 iterations in one run.
"$bin/ember-pagerank" --input a/g.el "${pr[@]}" --iterations 8 --output ref.csv \
    --checkpoint-dir ck-ref || fail "reference run"
"$bin/ember-pagerank" --input a/g.el "${pr[@]}" --iterations 4 --output x.csv \
    || fail "first run"
# The same bytes copied to scratch: resumes at 4, same result as uninterrupted.
cp a/g.el scratch/g.el
"$bin/ember-pagerank" --input scratch/g.el "${loud[@]}" --iterations 8 \
    --output moved.csv 2> err.txt || fail "moved copy refused: $(cat err.txt)"
grep -q "resumed" err.txt || fail "moved copy did not resume: $(cat err.txt)"
cmp -s ref.csv moved.csv || fail "moved copy: ranks differ from the uninterrupted run"

# Regenerated in place (one more edge): refused, exit 2, naming the file,
# the sizes and the hashes.
echo "0 33" >> scratch/g.el
"$bin/ember-pagerank" --input scratch/g.el "${pr[@]}" --iterations 10 --output c.csv 2> err.txt
st=$?
[ "$st" -eq 2 ] || fail "changed input: exit $st, wanted 2: $(cat err.txt)"
grep -q "scratch/g.el" err.txt || fail "the refusal does not name the file: $(cat err.txt)"
grep -q "input.bytes=" err.txt || fail "the refusal does not give the sizes: $(cat err.txt)"
grep -q "input.xxh3=" err.txt || fail "the refusal does not give the hashes: $(cat err.txt)"
grep -q "SOURCE_DATE_EPOCH" err.txt && fail "a text input is not an ember file: $(cat err.txt)"
[ ! -e c.csv ] || fail "a refused run wrote output"
# Same size, other content: refused by the hash alone.
sed 's/^0 1$/0 2/' a/g.el > scratch/g2.el
[ "$(stat -c %s scratch/g2.el)" -eq "$(stat -c %s a/g.el)" ] || fail "test input sizes differ"
"$bin/ember-pagerank" --input scratch/g2.el "${pr[@]}" --iterations 10 --output c.csv 2> err.txt
st=$?
[ "$st" -eq 2 ] || fail "same size, other content: exit $st, wanted 2"
grep -q "input.xxh3=" err.txt || fail "same size: no hash in the refusal: $(cat err.txt)"
grep "input.bytes=" err.txt && fail "same size: the sizes were said to differ"
# --force-resume overrides.
"$bin/ember-pagerank" --input scratch/g.el "${pr[@]}" --iterations 10 --force-resume \
    --output c.csv 2> err.txt || fail "--force-resume refused: $(cat err.txt)"
[ -s c.csv ] || fail "--force-resume wrote nothing"

# The format --format auto picks goes into the parameters by name: a run
# on g.mtx resumes under an explicit --format mtx (the same run). The same
# bytes named .el used to pass as the same run (format=auto matched) and
# were read as an edge list, the size line an edge; the edge-list reader
# now refuses a Matrix Market banner outright.
rm -rf ck
printf '%%%%MatrixMarket matrix coordinate pattern general\n6 6 8\n1 2\n2 3\n3 1\n3 4\n4 5\n5 6\n6 4\n2 5\n' > m.mtx
"$bin/ember-pagerank" --input m.mtx --tolerance 0 --iterations 4 --quiet \
    --checkpoint-dir ck --checkpoint-every 2 --output m1.csv || fail "m.mtx run"
"$bin/ember-pagerank" --input m.mtx --format mtx --tolerance 0 --iterations 6 \
    --checkpoint-dir ck --checkpoint-every 2 --output m2.csv 2> err.txt \
    || fail "--format mtx refused a run of --format auto on m.mtx: $(cat err.txt)"
grep -q "resumed" err.txt || fail "--format mtx did not resume the auto run: $(cat err.txt)"
cp m.mtx m.el
"$bin/ember-pagerank" --input m.el --format el --tolerance 0 --iterations 6 --quiet \
    --checkpoint-dir ck --checkpoint-every 2 --output m3.csv 2> err.txt
st=$?
[ "$st" -eq 2 ] || fail "Matrix Market bytes read as an edge list: exit $st: $(cat err.txt)"
grep -q "Matrix Market" err.txt || fail "the refusal does not say Matrix Market: $(cat err.txt)"
# Forced onto a graph of another size: refused with exit 2, naming both
# counts (this path read freed memory once: the sanitizer build runs it).
printf '0 1\n1 2\n2 3\n3 4\n4 5\n5 6\n' > seven.el
printf '0 1\n1 2\n2 3\n3 4\n4 5\n' > six.el
"$bin/ember-pagerank" --input seven.el --tolerance 0 --iterations 4 --quiet \
    --checkpoint-dir ck7 --checkpoint-every 2 --output m1.csv || fail "seven.el run"
"$bin/ember-pagerank" --input six.el --tolerance 0 --iterations 10 --quiet --force-resume \
    --checkpoint-dir ck7 --checkpoint-every 2 --output m2.csv 2> err.txt
st=$?
[ "$st" -eq 2 ] || fail "forced onto another graph: exit $st: $(cat err.txt)"
grep -q "the checkpoint holds 7 ranks, the graph has 6 vertices" err.txt \
    || fail "forced onto another graph: $(cat err.txt)"

# ember-cc: a moved copy resumes, changed content is refused.
rm -rf ck
"$bin/ember-cc" --input a/g.el --iterations 1 --quiet --checkpoint-dir ck \
    --checkpoint-every 1 --output cc1.csv || fail "cc first run"
cp a/g.el scratch/cc.el
"$bin/ember-cc" --input scratch/cc.el --quiet --checkpoint-dir ck --output cc2.csv 2> err.txt \
    || fail "cc: moved copy refused: $(cat err.txt)"
echo "40 41" >> scratch/cc.el
"$bin/ember-cc" --input scratch/cc.el --quiet --checkpoint-dir ck --output cc3.csv 2> err.txt
[ $? -eq 2 ] || fail "cc: changed input not refused: $(cat err.txt)"

# ember-kmeans: the CSV input and the --init file, both by content.
rm -rf ck
head -4 "$src/data/iris.csv" | tail -3 > a/init.csv
km=(--tolerance 0 --quiet --checkpoint-dir ck --checkpoint-every 1)
"$bin/ember-kmeans" --input "$src/data/iris.csv" --init a/init.csv "${km[@]}" \
    --iterations 2 > /dev/null || fail "kmeans first run"
cp "$src/data/iris.csv" scratch/iris.csv
cp a/init.csv scratch/init.csv
"$bin/ember-kmeans" --input scratch/iris.csv --init scratch/init.csv "${km[@]}" \
    --iterations 4 > /dev/null 2> err.txt || fail "kmeans: moved copies refused: $(cat err.txt)"
head -5 "$src/data/iris.csv" | tail -3 > scratch/init.csv
"$bin/ember-kmeans" --input scratch/iris.csv --init scratch/init.csv "${km[@]}" \
    --iterations 6 > /dev/null 2> err.txt
st=$?
[ "$st" -eq 2 ] || fail "kmeans: changed --init: exit $st, wanted 2: $(cat err.txt)"
grep -q "init.xxh3=" err.txt || fail "kmeans: the refusal does not name the init file's hash: $(cat err.txt)"
grep -q "scratch/init.csv" err.txt || fail "kmeans: the refusal does not name the file: $(cat err.txt)"

# ember-sssp: a moved copy resumes to the uninterrupted distances, a changed
# weight is refused.
rm -rf ck
cp "$src/data/karate-weighted.el" a/w.el
sp=(--undirected --source 0 --quiet --checkpoint-every 1)
"$bin/ember-sssp" --input a/w.el "${sp[@]}" --checkpoint-dir ck-sref --output sref.csv \
    || fail "sssp reference run"
"$bin/ember-sssp" --input a/w.el "${sp[@]}" --checkpoint-dir ck --iterations 1 \
    --output s1.csv || fail "sssp first run"
cp a/w.el scratch/w.el
"$bin/ember-sssp" --input scratch/w.el --undirected --source 0 --checkpoint-every 1 \
    --checkpoint-dir ck --output s2.csv 2> err.txt || fail "sssp: moved copy refused: $(cat err.txt)"
grep -q "resumed" err.txt || fail "sssp: moved copy did not resume: $(cat err.txt)"
cmp -s sref.csv s2.csv || fail "sssp: moved copy: distances differ from the uninterrupted run"
sed -i '0,/^\([0-9]* [0-9]*\) [0-9.]*$/s//\1 7.5/' scratch/w.el
cmp -s a/w.el scratch/w.el && fail "sssp: the test did not change a weight"
"$bin/ember-sssp" --input scratch/w.el "${sp[@]}" --checkpoint-dir ck --output s3.csv 2> err.txt
st=$?
[ "$st" -eq 2 ] || fail "sssp: changed weight: exit $st, wanted 2: $(cat err.txt)"
grep -q "scratch/w.el" err.txt || fail "sssp: the refusal does not name the file: $(cat err.txt)"
# A newline in the input's name: the path is recorded escaped, not as a
# parameter line of its own ("g\ndamping=0.5.el" read as damping=0.5, and
# the rerun was refused: parameters differ).
nl=$(printf 'g\ndamping=0.5.el')
cp "$src/data/karate.el" "$nl"
"$bin/ember-pagerank" --input "$nl" --checkpoint-dir cknl --checkpoint-every 2 --stop-at 4 \
    --quiet --output nl1.csv 2> err.txt
st=$?
[ "$st" -eq 75 ] || fail "newline in the name: --stop-at: exit $st: $(cat err.txt)"
"$bin/ember-pagerank" --input "$nl" --checkpoint-dir cknl --checkpoint-every 2 --output nl1.csv \
    2> err.txt || fail "newline in the name: the rerun was refused: $(cat err.txt)"
grep -q "resumed" err.txt || fail "newline in the name: no resume: $(cat err.txt)"
"$bin/ember-pagerank" --input "$nl" --quiet --output nl2.csv || fail "newline: straight run"
cmp -s nl1.csv nl2.csv || fail "newline in the name: the resumed ranks differ"
# A name re-pointed between the hash and the load (a "current" symlink
# switched to another graph meanwhile): the run loads the file it hashed,
# through the descriptor it keeps, not the graph the name now leads to.
# It loaded the other graph under the first one's fingerprint and wrote
# checkpoints of that mix, which a clean rerun then resumed, exit 0.
mkdir v1 v2
cp "$src/data/karate.el" v1/g.el
printf '0 1\n1 2\n2 0\n' > v2/g.el
ln -s v1 current
sw=(--undirected --tolerance 0 --quiet --iterations 6)
"$bin/ember-pagerank" --input v1/g.el "${sw[@]}" --output sref.csv || fail "swap: reference"
EMBER_TEST_LOAD_DELAY=30 EMBER_TEST_LOAD_READY="$work/ready" "$bin/ember-pagerank" \
    --input current/g.el "${sw[@]}" --checkpoint-dir cksw --checkpoint-every 1 \
    --output sw.csv 2> err.txt &
pid=$!
for _ in $(seq 300); do ls ready.* > /dev/null 2>&1 && break; sleep 0.1; done
ls ready.* > /dev/null 2>&1 || fail "swap: the load never said it was ready"
ln -sfn v2 current
touch ready.go
wait "$pid" || fail "swap: the run failed: $(cat err.txt)"
cmp -s sref.csv sw.csv || fail "swap: the run did not compute on the file it hashed"
# The HDF5 input removed between the hash and the load: HDF5 cannot open
# it by its descriptor's name; the run says the input was replaced (exit 2).
"$bin/ember-convert" "$src/data/karate.el" gone.h5 2> /dev/null || fail "convert gone.h5"
rm -f ready.*
EMBER_TEST_LOAD_DELAY=30 EMBER_TEST_LOAD_READY="$work/ready" "$bin/ember-pagerank" \
    --input gone.h5 --quiet --output gone.csv 2> err.txt &
pid=$!
for _ in $(seq 300); do ls ready.[0-9]* > /dev/null 2>&1 && break; sleep 0.1; done
rm gone.h5
touch ready.go
wait "$pid"
st=$?
[ "$st" -eq 2 ] || fail "removed input: exit $st: $(cat err.txt)"
grep -q "^ember-pagerank: --input gone.h5: replaced or written since" err.txt ||
    fail "removed input: $(cat err.txt)"
# "real.h5:/points" naming both a file (in a directory "real.h5:") and a
# dataset of real.h5: refused, not the one hashed and the other loaded.
"$bin/ember-gen" blobs --n 40 --d 2 --k 2 --output real.h5 --quiet || fail "blobs"
mkdir 'real.h5:'
echo "1,2" > 'real.h5:/points'
"$bin/ember-kmeans" --input real.h5:/points --k 2 --quiet --output km.csv 2> err.txt
[ $? -eq 2 ] || fail "file:/dataset naming two things: exit status: $(cat err.txt)"
grep -q "names both a file of that name and dataset /points of real.h5" err.txt ||
    fail "file:/dataset naming two things: $(cat err.txt)"
rm -r 'real.h5:'
"$bin/ember-kmeans" --input real.h5:/points --k 2 --quiet --output km.csv > /dev/null ||
    fail "file:/dataset"
# and a message about the input names the user's file, not the descriptor
# An ember .h5 made again differs in its creation time: the refusal says
# so, and made with one SOURCE_DATE_EPOCH it is the same bytes and resumes.
gen=("$bin/ember-gen" kron --scale 6 --seed 1 --output g6.h5 --quiet)
SOURCE_DATE_EPOCH=1700000000 "${gen[@]}" 2> /dev/null || fail "gen g6"
"$bin/ember-pagerank" --input g6.h5 "${pr[@]}" --iterations 4 --checkpoint-dir ck6 \
    > /dev/null || fail "g6 first run"
SOURCE_DATE_EPOCH=1700000001 "${gen[@]}" 2> /dev/null || fail "gen g6 again"
"$bin/ember-pagerank" --input g6.h5 "${pr[@]}" --iterations 8 --checkpoint-dir ck6 \
    > /dev/null 2> err.txt && fail "a g6.h5 made at another time resumed"
grep -q "differs in its creation time unless SOURCE_DATE_EPOCH was set for both" \
    err.txt || fail "no SOURCE_DATE_EPOCH hint: $(cat err.txt)"
SOURCE_DATE_EPOCH=1700000000 "${gen[@]}" 2> /dev/null || fail "gen g6 as first"
"$bin/ember-pagerank" --input g6.h5 "${pr[@]}" --iterations 8 --checkpoint-dir ck6 \
    --resume require > /dev/null 2> err.txt || fail "g6.h5 made again the same: $(cat err.txt)"

printf '0 1\n1 x\n' > bad.el
"$bin/ember-pagerank" --input bad.el --quiet 2> err.txt
[ $? -eq 2 ] || fail "bad input: exit status"
grep -q "^ember-pagerank: bad.el:2: " err.txt || fail "bad input: the file is not named: $(cat err.txt)"
echo "input fingerprints: ok"
