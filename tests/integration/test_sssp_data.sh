#!/usr/bin/env bash
# ember-sssp against its serial Dijkstra checker (--verify, bit for bit) on
# the bundled weighted karate club, on a generated Kronecker graph with
# random weights 1..255 (directed and undirected) and on a Matrix Market
# file with values; every plan (pull, shuffle, push, delta) at 1 and 2
# threads gives the same bytes; hand-computed distances and the HDF5 output
# (inf where unreachable) are checked too. A long weighted path: push and
# delta take the same rounds as pull (a round an edge); a weighted grid,
# delta at several widths, the same distances, and the same rounds at 1 and
# 2 threads.
set -euo pipefail
bin=${EMBER_BIN:?}
src=${EMBER_SRC:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

fail() { echo "FAIL: $*" >&2; exit 1; }

# run NAME ARGS...: ember-sssp with --verify, must print PASS, output NAME.csv
run() {
    local name=$1
    shift
    "$bin/ember-sssp" "$@" --verify --quiet --output "$name.csv" > "$name.out" ||
        fail "ember-sssp $* exited $?: $(cat "$name.out")"
    grep -q "^Verification: PASS" "$name.out" || fail "ember-sssp $*: $(cat "$name.out")"
}

# every plan and thread count, one reference output
all_ways() {
    local name=$1
    shift
    run "$name.ref" "$@" --threads 1
    for plan in pull shuffle push delta; do
        for t in 1 2; do
            run "$name.$plan.$t" "$@" --plan "$plan" --threads "$t" --partitions 3
            cmp "$name.ref.csv" "$name.$plan.$t.csv" ||
                fail "$name: --plan $plan --threads $t differs from the reference"
        done
    done
}

karate=$src/data/karate-weighted.el
all_ways karate --input "$karate" --undirected --source 0
head -1 karate.ref.csv | grep -qx "vertex,distance" || fail "no CSV header"
# hand-checked: 0-3 weighs 1; 0-1 weighs 4 but 0-2-1 is 2.5 + 0 ... see the file
grep -qx "3,1" karate.ref.csv || fail "vertex 3 is not at 1: $(sed -n 5p karate.ref.csv)"
grep -qx "0,0" karate.ref.csv || fail "the source is not at 0"
[ "$(wc -l < karate.ref.csv)" = 35 ] || fail "not 34 vertices"
grep -q "inf" karate.ref.csv && fail "an undirected karate club vertex is unreachable"

# directed from 33 (no out-edges: only itself); HDF5 output with inf
"$bin/ember-sssp" --input "$karate" --source 33 --output d.h5 --quiet
h5dump -d /distances d.h5 > d.txt
grep -q "inf" d.txt || fail "no inf in /distances: $(head -20 d.txt)"
h5dump -a /distances/reached d.h5 | grep -q "(0): 1$" || fail "reached is not 1"
[ "$(grep -o inf d.txt | wc -l)" = 33 ] || fail "33 vertices should be unreachable"

"$bin/ember-gen" kron --scale 10 --edge-factor 8 --weighted --seed 7 --output k.el --quiet
grep -v '^#' k.el | awk 'NF != 3 || $3 < 1 || $3 > 255 || $3 != int($3) { bad = 1 }
    END { exit bad }' || fail "ember-gen --weighted wrote a weight outside 1..255"
s=$(awk '!/^#/ { print $1; exit }' k.el)
all_ways kron --input k.el --source "$s"
awk 'BEGIN { for (i = 0; i < 3000; i++) print i, i + 1, 1 + (i * 7919) % 13 }' > path.el
all_ways path --input path.el --source 0
grep -q " in 3001 rounds" path.ref.out || fail "path: $(cat path.ref.out)"
grep -q " in 3001 rounds" path.push.2.out || fail "path, push: $(cat path.push.2.out)"
grep -q " in 3001 rounds" path.delta.2.out || fail "path, delta: $(cat path.delta.2.out)"
# a 60 x 60 grid of weights 1..9 both ways: delta's widths (and its default)
awk 'BEGIN { k = 60; for (r = 0; r < k; r++) for (c = 0; c < k; c++) { v = r * k + c
     if (c + 1 < k) print v, v + 1, 1 + (v * 31) % 9
     if (r + 1 < k) print v, v + k, 1 + (v * 17) % 9 } }' > grid.el
run grid.ref --input grid.el --undirected --source 0
for d in 0.01 0.5 2 9 1e9; do
    for t in 1 2; do
        run "grid.$d.$t" --input grid.el --undirected --source 0 --plan delta --delta "$d" \
            --threads $t
        cmp grid.ref.csv "grid.$d.$t.csv" || fail "grid: --plan delta --delta $d differs"
    done
    cmp "grid.$d.1.out" "grid.$d.2.out" || fail "grid, --delta $d: rounds differ by threads"
done
# one bucket is push; narrow ones take other rounds (the buckets are used)
run grid.push --input grid.el --undirected --source 0 --plan push --threads 2
rounds() { sed -n 's/.* in \([0-9]*\) rounds.*/\1/p' "$1"; }
[ "$(rounds grid.1e9.2.out)" = "$(rounds grid.push.out)" ] ||
    fail "grid: --delta 1e9 took $(rounds grid.1e9.2.out) rounds, push $(rounds grid.push.out)"
[ "$(rounds grid.0.5.2.out)" != "$(rounds grid.1e9.2.out)" ] ||
    fail "grid: --delta 0.5 took push's rounds"

# push (delta) stopped and resumed from its checkpoint: the rounds and
# distances of an uninterrupted run; a pull checkpoint resumed by force (the
# same records, prev aside) ends the same; a shuffle checkpoint (reached
# vertices only) is refused, exit 2.
pargs=(--input k.el --source "$s" --quiet)
for to in push delta; do
    "$bin/ember-sssp" "${pargs[@]}" --plan $to --output pu.csv > pu.out
    for from in $to pull shuffle; do
        rm -rf ck
        "$bin/ember-sssp" "${pargs[@]}" --plan "$from" --iterations 3 --checkpoint-dir ck \
            --checkpoint-every 1 --output part.csv > /dev/null
        set +e
        "$bin/ember-sssp" "${pargs[@]}" --plan $to --checkpoint-dir ck --force-resume \
            --output re.csv > re.out 2> re.err
        st=$?
        set -e
        if [ "$from" = shuffle ]; then
            [ "$st" = 2 ] && grep -q "not the graph's vertices" re.err ||
                fail "a shuffle checkpoint under $to: exit $st: $(cat re.err)"
            continue
        fi
        [ "$st" = 0 ] || fail "$to from a $from checkpoint: exit $st: $(cat re.err)"
        cmp pu.csv re.csv || fail "$to from a $from checkpoint: distances differ"
        [ "$from" = pull ] || cmp pu.out re.out || fail "$to resumed: $(cat re.out) vs $(cat pu.out)"
    done
done
# frontiers of over 1024 vertices, which a team sends from (smaller ones
# stay on the calling thread): push and delta at 1 and 2 threads, pull's
# distances, the same rounds
"$bin/ember-gen" kron --scale 14 --edge-factor 8 --weighted --seed 3 --output k14.el --quiet
s14=$(awk '!/^#/ { print $1; exit }' k14.el)
run k14.ref --input k14.el --undirected --source "$s14"
for plan in push delta; do
    for t in 1 2; do
        "$bin/ember-sssp" --input k14.el --undirected --source "$s14" --plan $plan \
            --threads $t --output "k14.$plan.$t.csv" --metrics "k14.$plan.$t.jsonl" \
            --quiet > "k14.$plan.$t.out"
        cmp k14.ref.csv "k14.$plan.$t.csv" || fail "k14: --plan $plan --threads $t differs"
    done
    cmp "k14.$plan.1.out" "k14.$plan.2.out" || fail "k14, $plan: rounds differ by threads"
    awk -F'"active": ' 'NF > 1 && $2 + 0 > 1024 { big = 1 } END { exit !big }' \
        "k14.$plan.2.jsonl" || fail "k14, $plan: no frontier over 1024 vertices"
done
all_ways kronu --input k.el --source "$s" --undirected
cmp -s kron.ref.csv kronu.ref.csv && fail "directed and undirected distances are the same"

# Matrix Market with values: 1 -> 2 (2.5), 2 -> 3 (0.5), 1 -> 3 (4), 4 alone
printf '%%%%MatrixMarket matrix coordinate real general\n%% c\n4 4 3\n1 2 2.5\n2 3 0.5\n1 3 4\n' > m.mtx
all_ways mtx --input m.mtx --source 0
printf 'vertex,distance\n0,0\n1,2.5\n2,3\n3,inf\n' > want.csv
cmp want.csv mtx.ref.csv || fail "Matrix Market distances: $(cat mtx.ref.csv)"
echo "PASS"
