#!/usr/bin/env bash
# test_stream_restart.sh: what a restart may and may not change, and how a
# run ends.
#
# - A restart with another output mode (or another sink) on the same
#   checkpoint location is refused with exit 2 and a message naming what
#   differs; the location is left as it was and the original query goes on.
# - Append mode is refused for the word count (an aggregation), exit 2.
# - Usage errors exit 2; --help exits 0 and shows examples.
# - A second process on a location in use is refused, naming the holder.
# - SIGTERM finishes and commits the batch under way and exits 75; a
#   restart resumes and the result is exact. Update mode writes only the
#   words a batch changed.
set -euo pipefail
. "$(dirname "$0")/test_stream_lib.sh"

T=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$T"' EXIT
mkdir -p "$T/src"

expect_exit() { # CODE CMD...: runs CMD, stderr to $T/err, checks the status
    local want=$1 rc=0
    shift
    "$@" >"$T/out.txt" 2>"$T/err" || rc=$?
    [ "$rc" -eq "$want" ] || fail "exit $rc, not $want, from: $* ($(cat "$T/err"))"
}

for i in 1 2 3; do make_file "$T/src" "a$i" "$i" 300; done
expect_exit 0 "$WC" --source "$T/src" --checkpoint-location "$T/ck" --sink "$T/out" \
    --trigger available-now --quiet
reference_count "$T/src" | cmp -s - "$(newest_output "$T/out")" || fail "first run"

# Another output mode on the same location: refused, saying what differs.
expect_exit 2 "$WC" --source "$T/src" --checkpoint-location "$T/ck" --sink "$T/out" \
    --output-mode update --trigger once
grep -q "belongs to another query" "$T/err" || fail "no mismatch message: $(cat "$T/err")"
grep -q "output_mode: 'complete' there, 'update' here" "$T/err" ||
    fail "the message does not say what differs: $(cat "$T/err")"
expect_exit 2 "$WC" --source "$T/src" --checkpoint-location "$T/ck" --sink console \
    --trigger once
grep -q "sink: 'dir:.*' there, 'console' here" "$T/err" || fail "sink change: $(cat "$T/err")"
# Run options may change; nothing new, so no batch and no change.
n=$(ls "$T/out" | wc -l)
expect_exit 0 "$WC" --source "$T/src" --checkpoint-location "$T/ck" --sink "$T/out" \
    --trigger once --max-files-per-trigger 1 --threads 1 --retain 3
[ "$(ls "$T/out" | wc -l)" -eq "$n" ] || fail "a batch ran with no new files"

# Mode rules and usage errors.
expect_exit 2 "$WC" --source "$T/src" --checkpoint-location "$T/ck2" --output-mode append
grep -q "append is not supported for a query with an aggregation" "$T/err" ||
    fail "append: $(cat "$T/err")"
[ ! -e "$T/ck2/metadata" ] || fail "a refused query wrote metadata"
expect_exit 2 "$WC" --checkpoint-location "$T/ck2"
grep -q -- "--source DIR is required" "$T/err" || fail "missing --source"
expect_exit 2 "$WC" --source "$T/src" --checkpoint-location "$T/ck2" --trigger sometimes
grep -q -- "--trigger: 'sometimes'" "$T/err" || fail "bad trigger"
expect_exit 2 "$WC" --source "$T/src" --checkpoint-location "$T/ck2" \
    --trigger processing-time=0s
expect_exit 2 "$WC" --source "$T/src" --checkpoint-location "$T/ck2" \
    --max-files-per-trigger 0
expect_exit 2 "$WC" --source "$T/nosuchdir" --checkpoint-location "$T/ck2"
grep -q "nosuchdir" "$T/err" || fail "missing source dir"
expect_exit 2 "$WC" --source "$T/src" --checkpoint-location "$T/ck2" --bogus
expect_exit 0 "$WC" --help
grep -q "^examples:" "$T/out.txt" || fail "--help has no examples"
grep -q "processing-time=" "$T/out.txt" || fail "--help lacks the triggers"

# Update mode, a location in use, SIGTERM.
mkdir -p "$T/src2"
for i in 1 2 3 4 5 6; do make_file "$T/src2" "b$i" "$((10 + i))" 20000; done
"$WC" --source "$T/src2" --checkpoint-location "$T/ck3" --sink "$T/out3" \
    --output-mode update --max-files-per-trigger 1 --poll 0.02 2>"$T/log3" &
PID=$!
for _ in $(seq 100); do [ -e "$T/out3/batch-000000000000.csv" ] && break; sleep 0.05; done
expect_exit 1 "$WC" --source "$T/src2" --checkpoint-location "$T/ck3" --sink "$T/out3" \
    --output-mode update
grep -q "is in use by process $PID" "$T/err" || fail "lock holder: $(cat "$T/err")"
kill -TERM "$PID"
rc=0
wait "$PID" || rc=$?
[ "$rc" -eq 75 ] || fail "SIGTERM gave exit $rc, not 75 ($(tail -2 "$T/log3"))"
grep -q "interrupted; batch [0-9]* committed; run the same command again" "$T/log3" ||
    fail "no resume message: $(tail -2 "$T/log3")"
last=$(ls "$T/ck3/commits" | sort -n | tail -1)
[ "$(ls "$T/ck3/offsets" | sort -n | tail -1)" = "$last" ] ||
    fail "SIGTERM left a batch planned but not committed"
make_file "$T/src2" b7 17 100
expect_exit 0 "$WC" --source "$T/src2" --checkpoint-location "$T/ck3" --sink "$T/out3" \
    --output-mode update --trigger available-now --quiet
# Update mode: the union of the batch files, latest count per word, is the
# full count; the last file holds only b7's words.
for f in $(ls "$T/out3"/batch-*.csv | sort); do tail -n +2 "$f"; done |
    awk '{ i = match($0, /,[0-9]+$/); w = substr($0, 1, i - 1); c[w] = substr($0, i + 1) }
         END { for (w in c) print w "," c[w] }' | sort -t, -k1,1 >"$T/merged"
reference_count "$T/src2" | tail -n +2 | sort -t, -k1,1 >"$T/expected"
cmp -s "$T/merged" "$T/expected" || { diff "$T/merged" "$T/expected" | head >&2; fail "update mode"; }
last=$(newest_output "$T/out3")
[ "$(wc -l <"$last")" -lt "$(wc -l <"$T/expected")" ] || fail "update wrote the whole table"
grep -q '^only-in-b7,1$' "$last" || fail "b7 missing from its batch"
echo "test_stream_restart: PASS"
