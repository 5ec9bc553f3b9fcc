#!/usr/bin/env bash
# Bad input and bad usage: ember-sssp exits 2 with a message naming the
# file and line of a bad weight, or the flag and its value.
set -euo pipefail
bin=${EMBER_BIN:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

failures=0
# expect EXIT_CODE 'message part' args...
expect() {
    local code=$1 part=$2
    shift 2
    set +e
    "$bin/ember-sssp" "$@" > out.txt 2> err.txt
    local rc=$?
    set -e
    if [ "$rc" != "$code" ]; then
        echo "FAIL: ember-sssp $* exited $rc, expected $code; stderr: $(cat err.txt)" >&2
        failures=$((failures + 1))
    elif ! grep -qF -- "$part" err.txt; then
        echo "FAIL: ember-sssp $*: stderr lacks '$part': $(cat err.txt)" >&2
        failures=$((failures + 1))
    elif [ "$(wc -l < err.txt)" -gt 3 ]; then
        echo "FAIL: ember-sssp $*: more than a few lines: $(cat err.txt)" >&2
        failures=$((failures + 1))
    fi
}

printf '0 1 1\n1 2 3\n' > ok.el
printf '# weights\n0 1 1\n1 2 0\n' > zero.el
printf '0 1 1\n1 2 -4\n' > neg.el
printf '0 1 1\n\n1 2 heavy\n' > word.el
printf '0 1 nan\n' > nan.el
printf '0 1 inf\n' > inf.el
printf '0 1 1\n1 2\n' > noweight.el
printf '%%%%MatrixMarket matrix coordinate pattern general\n2 2 1\n1 2\n' > pattern.mtx
printf '%%%%MatrixMarket matrix coordinate real general\n2 2 1\n1 2 -1\n' > negative.mtx

out=(--output d.csv)
expect 2 "zero.el:3: bad weight '0': weights must be positive finite numbers" \
    --input zero.el --source 0 "${out[@]}"
expect 2 "neg.el:2: bad weight '-4'" --input neg.el --source 0 "${out[@]}"
# finite weights whose path lengths could overflow (vertex 2 came out "not
# reached", exit 0)
printf '0 1 1e308\n1 2 1e308\n' > huge.el
expect 2 "huge.el: a weight of 1e+308 on 3 vertices: a path's length could overflow" \
    --input huge.el --source 0 "${out[@]}"
expect 2 "word.el:3: non-numeric weight 'heavy'" --input word.el --source 0 "${out[@]}"
expect 2 "nan.el:1: bad weight 'nan'" --input nan.el --source 0 "${out[@]}"
expect 2 "inf.el:1: bad weight 'inf'" --input inf.el --source 0 "${out[@]}"
expect 2 "noweight.el:2: edge '1 ...' has no weight" --input noweight.el --source 0 "${out[@]}"
expect 2 "pattern.mtx:1: a pattern matrix has no values" --input pattern.mtx --source 0 "${out[@]}"
expect 2 "negative.mtx:3: bad weight '-1'" --input negative.mtx --source 0 "${out[@]}"
expect 2 "--source is required" --input ok.el "${out[@]}"
# the shuffle plan's bookkeeping grows as partitions squared: refused as the
# argument it comes from, before any work (it was exit 1, from the first
# round's shuffle)
expect 2 "--partitions 16777216: the shuffle plan keeps 16 bytes a pair of partitions" \
    --input ok.el --source 0 --plan shuffle --partitions 16777216 "${out[@]}"
# one past the largest count it names: refused too, its two sizes told apart
# (they both read 6319 MB once)
most=$(sed -n 's/.*give at most \([0-9]*\),.*/\1/p' err.txt)
expect 2 "--partitions $((most + 1)): the shuffle plan" \
    --input ok.el --source 0 --plan shuffle --partitions $((most + 1)) "${out[@]}"
sizes=$(sed -n 's/.*round (\([0-9.]*\) MB), more than the memory budget (\([0-9.]*\) MB).*/\1 \2/p' err.txt)
read -r need have <<< "$sizes"
if [ -z "$sizes" ] || [ "$need" = "$have" ]; then
    echo "FAIL: the refusal of --partitions $((most + 1)) says equal sizes: $(cat err.txt)" >&2
    failures=$((failures + 1))
fi
expect 2 "--source 3: ok.el has 3 vertices (0..2)" --input ok.el --source 3 "${out[@]}"
expect 2 "--source: 99999999999 is out of range" --input ok.el --source 99999999999 "${out[@]}"
expect 2 "--source" --input ok.el --source -1 "${out[@]}"
expect 2 "--source" --input ok.el --source x "${out[@]}"
expect 2 "missing.el: no such file" --input missing.el --source 0 "${out[@]}"
expect 2 "--tolerance means nothing to ember-sssp" --input ok.el --source 0 --tolerance 1
expect 2 "--plan" --input ok.el --source 0 --plan bogus "${out[@]}"
expect 2 "--delta is the bucket width of --plan delta" --input ok.el --source 0 --delta 2 "${out[@]}"
expect 2 "--delta" --input ok.el --source 0 --plan delta --delta 0 "${out[@]}"
expect 2 "--format" --input ok.el --source 0 --format h5 "${out[@]}"
"$bin/ember-gen" kron --scale 4 --output g.h5 --quiet
expect 2 "holds no edge weights" --input g.h5 --source 0 "${out[@]}"
expect 2 "ember's HDF5 CSR holds no weights" --input g.h5 --source 0 --format h5 "${out[@]}"
set +e
"$bin/ember-gen" kron --scale 4 --weighted --output w.h5 --quiet 2> err.txt
rc=$?
set -e
[ "$rc" = 2 ] && grep -q "holds no weights" err.txt ||
    { echo "FAIL: ember-gen kron --weighted to .h5 exited $rc: $(cat err.txt)" >&2; failures=$((failures + 1)); }
# a checkpoint of another graph under the same file name: refused, exit 2,
# by the input's content; forced past that, by the state not fitting the graph
awk 'BEGIN { for (i = 0; i < 50; i++) print i, i + 1, 1 }' > same.el
"$bin/ember-sssp" --input same.el --source 0 --checkpoint-dir ck --checkpoint-every 5 \
    --iterations 10 --output d0.csv --quiet
head -n 20 same.el > cut.el && mv cut.el same.el
expect 2 "--input same.el has other content than the input of the checkpointed run" \
    --input same.el --source 0 --checkpoint-dir ck "${out[@]}"
set +e # (its stderr also has the forced resume's warning and messages)
"$bin/ember-sssp" --input same.el --source 0 --checkpoint-dir ck --force-resume "${out[@]}" \
    2> err.txt
rc=$?
set -e
[ "$rc" = 2 ] && grep -qF "not the graph's vertices in order (a checkpoint of another graph?)" err.txt ||
    { echo "FAIL: a forced resume of another graph's state exited $rc: $(cat err.txt)" >&2; failures=$((failures + 1)); }
[ -e d.csv ] && { echo "FAIL: a failed run wrote its output" >&2; failures=$((failures + 1)); }
# forced from another source: refused, exit 2 (distances from 0 went on
# from source 3, exit 0, with source 3 at distance 3)
awk 'BEGIN { for (i = 0; i < 50; i++) print i, i + 1, 1 }' > path.el
rm -rf cks && "$bin/ember-sssp" --input path.el --source 0 --checkpoint-dir cks \
    --checkpoint-every 5 --iterations 10 --output d0.csv --quiet
# (also when the checkpoint is at --iterations, so that no round runs)
for at_end in "" "--iterations 10"; do
    # shellcheck disable=SC2086 # at_end is two words or none
    expect 2 "the checkpoint's distances are not from --source 3 (its distance there is 3)" \
        --input path.el --source 3 --checkpoint-dir cks --force-resume $at_end "${out[@]}"
    [ -e d.csv ] && { echo "FAIL: a refused run wrote its output" >&2; failures=$((failures + 1)); }
done
[ "$failures" = 0 ] || exit 1
echo "PASS"
