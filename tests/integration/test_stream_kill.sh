#!/usr/bin/env bash
# test_stream_kill.sh: exactly-once across kill -9.
#
# Files arrive in rounds while ember-stream-wordcount runs with the default
# trigger; each run is killed with SIGKILL after a random delay (mid-batch
# or idle, whatever the timing gives) and started again, many times. At the
# end an available-now run finishes the backlog, and the newest
# complete-mode file must equal a word count of all the files made here
# with tr/sort/uniq: every file counted exactly once (each file also holds
# one word of its own, which must count exactly 1). Every batch file must
# be whole, and no temporary file may be left behind.
set -euo pipefail
. "$(dirname "$0")/test_stream_lib.sh"

T=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$T"' EXIT
mkdir -p "$T/src"

ROUNDS=${ROUNDS:-8}
FILES=${FILES:-10}
KILLS=${KILLS:-4}
RANDOM=4242

run_bg() {
    "$WC" --source "$T/src" --checkpoint-location "$T/ck" --sink "$T/out" \
        --output-mode complete --max-files-per-trigger 3 --poll 0.02 \
        >>"$T/stdout" 2>>"$T/log" &
    PID=$!
}

kills=0
for ((r = 0; r < ROUNDS; r++)); do
    for ((f = 0; f < FILES; f++)); do
        make_file "$T/src" "$(printf 'r%02d-f%03d.txt' "$r" "$f")" $((r * 1000 + f)) \
            $((2000 + RANDOM % 6000))
    done
    for ((k = 0; k < KILLS; k++)); do
        run_bg
        sleep "0.$(printf '%03d' $((20 + RANDOM % 400)))"
        kill -9 "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
        kills=$((kills + 1))
    done
done

# Finish what is left; this run must end by itself.
"$WC" --source "$T/src" --checkpoint-location "$T/ck" --sink "$T/out" \
    --output-mode complete --max-files-per-trigger 3 --trigger available-now \
    >>"$T/stdout" 2>>"$T/log" || fail "the final run failed: $(tail -3 "$T/log")"

reference_count "$T/src" >"$T/expected"
got=$(newest_output "$T/out")
[ -n "$got" ] || fail "no output"
if ! cmp -s "$T/expected" "$got"; then
    diff "$T/expected" "$got" | head -20 >&2
    fail "the newest output differs from the reference count"
fi
nfiles=$(ls "$T/src" | wc -l)
[ "$(grep -c '^only-in-' "$got")" -eq "$nfiles" ] || fail "not every file counted"
grep '^only-in-' "$got" | grep -v ',1$' && fail "a file was counted twice"

# Complete mode: every batch file is a whole table, never shrinking.
prev=0
for f in $(ls "$T/out"/batch-*.csv | sort); do
    total=$(awk -F, '{ s += $NF } END { print s + 0 }' "$f")
    [ "$total" -ge "$prev" ] || fail "$f holds fewer words than the batch before"
    prev=$total
done
ls -a "$T/out" "$T/ck" "$T/ck/state" | grep -q '\.tmp$' && fail "temporary files left"

reruns=$(grep -c 're-run of a batch' "$T/log" || true)
echo "test_stream_kill: $kills kills, $(ls "$T/out" | wc -l) batches, $reruns batches" \
     "re-run after a kill mid-batch, $nfiles files, $(wc -l <"$got") words: PASS"
