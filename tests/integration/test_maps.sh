#!/usr/bin/env bash
# ember-maps, the repeated-maps job: the result against the closed form at
# several thread and partition counts; 100,000 maps without a checkpoint;
# --checkpoint-every cuts the lineage (--lineage shows it) and a killed run
# resumes to the same result; bad usage exits 2 naming the flag.
set -euo pipefail
bin=${EMBER_BIN:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

expect() { # n maps -> "sum: S" "count: C"
    awk -v n="$1" -v m="$2" 'BEGIN { printf "sum: %.0f\ncount: %.0f\n", n * (n - 1) / 2 + n * m, n }'
}

for t in 1 2 4; do
    for p in 1 7 64; do
        "$bin/ember-maps" --n 1000003 --maps 12 --threads $t --partitions $p \
            --quiet > out.txt
        expect 1000003 12 | cmp -s - out.txt || fail "threads $t partitions $p: $(cat out.txt)"
    done
done
"$bin/ember-maps" --n 1000 --maps 100000 --quiet --verify > long.txt
grep -q "Verification: PASS" long.txt || fail "100,000 maps: $(cat long.txt)"
expect 1000 100000 | cmp -s - <(head -2 long.txt) || fail "100,000 maps: $(cat long.txt)"

# Without checkpoints the lineage is the whole chain; with them, it is cut.
"$bin/ember-maps" --n 5000 --maps 30 --lineage --quiet > plain.txt
[ "$(grep -c ' map #' plain.txt)" -eq 30 ] || fail "lineage of 30 maps: $(head -5 plain.txt)"
"$bin/ember-maps" --n 5000 --maps 30 --lineage --quiet --checkpoint-dir ck \
    --checkpoint-every 7 > cut.txt
grep -q "checkpoint" cut.txt || fail "no checkpoint in the lineage: $(cat cut.txt)"
[ "$(grep -c ' map #' cut.txt)" -lt 30 ] || fail "lineage not cut: $(head -5 cut.txt)"
ls ck/ckpt-*.h5 > /dev/null || fail "no checkpoint files"
tail -2 cut.txt | cmp -s - <(expect 5000 30) || fail "checkpointed result: $(cat cut.txt)"
# fewer maps than the checkpoint holds: refused, naming --maps
set +e
"$bin/ember-maps" --n 5000 --maps 20 --quiet --checkpoint-dir ck --checkpoint-every 7 \
    > /dev/null 2> err.txt; st=$?
set -e
[ $st -eq 2 ] && grep -q "^ember-maps: --maps 20: the checkpoint in ck is at iteration 30.*give --maps 30 or more" err.txt \
    || fail "--maps below the checkpoint: exit $st: $(cat err.txt)"

# Killed at random moments, resumed with other thread counts.
rm -rf ck
RANDOM=${EMBER_TEST_SEED:-77}
args=(--n 4000000 --maps 1500 --checkpoint-dir ck --checkpoint-every 50 --quiet)
kills=0
for i in $(seq 6); do
    "$bin/ember-maps" "${args[@]}" --threads $((RANDOM % 3 + 1)) > res.txt &
    pid=$!
    sleep "0.$((RANDOM % 4 + 1))"
    kill -9 $pid 2> /dev/null && kills=$((kills + 1))
    wait $pid 2> /dev/null || true
done
"$bin/ember-maps" "${args[@]}" --threads 2 > res.txt || fail "resume failed"
expect 4000000 1500 | cmp -s - res.txt || fail "after $kills kills: $(cat res.txt)"

set +e
"$bin/ember-maps" --n -5 > /dev/null 2> err.txt; st=$?
set -e
[ $st -eq 2 ] && grep -q -- "--n" err.txt || fail "--n -5: exit $st: $(cat err.txt)"
set +e
"$bin/ember-maps" --maps x > /dev/null 2> err.txt; st=$?
set -e
[ $st -eq 2 ] && grep -q -- "--maps" err.txt || fail "--maps x: exit $st: $(cat err.txt)"
# Past int64: range(2^32 + 1) after one map sums to 9223372043297226753,
# above 2^63 - 1. It printed a wrapped, negative sum with exit 0 (and
# --verify, wrapping too, said PASS); the sum is exact now.
"$bin/ember-maps" --n 4294967297 --maps 1 --partitions 64 --verify --quiet > res.txt \
    || fail "--n 4294967297: exit $?"
printf 'sum: 9223372043297226753\ncount: 4294967297\nVerification: PASS\n' | cmp -s - res.txt \
    || fail "--n 4294967297: $(cat res.txt)"
# records past int64 are refused before any work
set +e
"$bin/ember-maps" --n 9223372036854775807 --maps 2 > /dev/null 2> err.txt; st=$?
set -e
[ $st -eq 2 ] && grep -q "past int64's largest value" err.txt || fail "--n 2^63-1 --maps 2: exit $st: $(cat err.txt)"
# a count past int64 too (2^63 passed the range check, a double, and
# counted nothing: sum 0, count 0, exit 0)
set +e
"$bin/ember-maps" --n 9223372036854775808 --maps 0 > out.txt 2> err.txt; st=$?
set -e
[ $st -eq 2 ] && [ ! -s out.txt ] && grep -q "must be at most 9223372036854775807" err.txt \
    || fail "--n 2^63 --maps 0: exit $st: $(cat out.txt err.txt)"
echo "ember-maps: ok ($kills kills)"
