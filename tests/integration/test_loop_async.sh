#!/usr/bin/env bash
# Asynchronous checkpoints (--checkpoint-async): files written in the
# background hold the same state as synchronous ones, so a run killed at
# random moments resumes to the result of an uninterrupted run; a write
# that fails in the background is reported by the run (exit 1, the file
# named), leaves no .tmp and keeps the earlier checkpoints.
set -euo pipefail
bin=${EMBER_BIN:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

"$bin/ember-gen" kron --scale 12 --edge-factor 16 --seed 9 --output g.h5 --quiet
args=(--input g.h5 --iterations 3000 --tolerance 0 --quiet)
"$bin/ember-pagerank" "${args[@]}" --threads 2 --output full.csv

t0=$(date +%s%N)
"$bin/ember-pagerank" "${args[@]}" --threads 2 --output a.csv --checkpoint-dir ck \
    --checkpoint-every 50 --checkpoint-async
run_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
cmp -s full.csv a.csv || fail "async checkpoints changed the result"
n=$(ls ck/ckpt-*.h5 | wc -l)
[ "$n" -eq 2 ] || fail "retention with async checkpoints kept $n files"
"$bin/ember-inspect" ck > /dev/null || fail "async checkpoints do not verify"

# Kills at random fractions of the measured length of a whole run, so they
# land mid-run in a fast build and in a sanitizer build alike. Each run
# resumes where the last one was killed, so a later one may finish before
# its kill (exit 0): its result is checked and the next starts afresh.
# Kills count only when they landed (exit 137), until 3 have.
rm -rf ck
RANDOM=${EMBER_TEST_SEED:-99}
kills=0 runs=0
while (( kills < 3 && runs < 40 )); do
    runs=$((runs + 1))
    "$bin/ember-pagerank" "${args[@]}" --threads $((RANDOM % 3 + 1)) --output b.csv \
        --checkpoint-dir ck --checkpoint-every 20 --checkpoint-async &
    pid=$!
    sleep "$(awk -v t="$run_ms" -v r=$((RANDOM % 25 + 5)) 'BEGIN { printf "%.3f", t * r / 100000 }')"
    kill -9 $pid 2> /dev/null || true
    st=0
    wait $pid 2> /dev/null || st=$?
    if [ $st -eq 137 ]; then
        kills=$((kills + 1))
    elif [ $st -eq 0 ]; then
        cmp -s full.csv b.csv || fail "a run resumed after $kills kills: ranks differ"
        rm -rf ck
    else
        fail "a run killed at random: exit $st"
    fi
done
"$bin/ember-pagerank" "${args[@]}" --threads 2 --output b.csv --checkpoint-dir ck \
    --checkpoint-every 20 --checkpoint-async || fail "resume failed"
cmp -s full.csv b.csv || fail "after $kills kills, async-checkpointed ranks differ"
[ "$kills" -ge 3 ] || fail "only $kills kills landed mid-run in $runs runs"

# A full disk in the background: files over 64 KiB cannot be written.
rm -rf ck
"$bin/ember-gen" kron --scale 16 --edge-factor 4 --seed 9 --output big.h5 --quiet
set +e
( trap '' XFSZ; ulimit -f 64
  exec "$bin/ember-pagerank" --input big.h5 --iterations 50 --tolerance 0 --quiet \
      --output c.csv --checkpoint-dir ck --checkpoint-every 5 --checkpoint-async ) 2> err.txt
st=$?
set -e
[ $st -eq 1 ] || fail "a failed background write: exit $st, wanted 1 ($(cat err.txt))"
grep -q "ckpt-" err.txt || fail "the message does not name the file: $(cat err.txt)"
! ls ck/*.tmp > /dev/null 2>&1 || fail "a .tmp file was left behind"
! grep -qi "sanitizer" err.txt || fail "sanitizer report: $(cat err.txt)"
echo "async checkpoints: ok ($kills kills)"
