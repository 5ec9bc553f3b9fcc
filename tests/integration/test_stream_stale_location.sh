#!/usr/bin/env bash
# test_stream_stale_location.sh: a checkpoint location that does not match
# what exists beside it is refused, never run from a wrong state; and the
# program's messages about it, its options and its signals.
#
# - Commits lost (only a later offsets entry and its snapshot left): exit 2
#   naming the missing commit; the sink file is not rewritten.
# - A location older than its sink (restored from a backup taken after
#   batch 2, the sink holding batches 0-5): exit 2 naming the newest sink
#   file and the last commit; after moving the newer batch files away the
#   run goes on and the newest file is the full count. A kill between a
#   batch's sink file and its commit still resumes.
# - ck/lock a directory: exit 2, as --help says.
# - --quiet=1: the flag takes no value; --poll 0x10 / inf: refused.
# - SIGTERM before any batch commits: a sensible line; --help names SIGUSR1.
# - The progress line's bytes are the files' bytes (no added line end).
set -euo pipefail
. "$(dirname "$0")/test_stream_lib.sh"

T=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$T"' EXIT
export OMP_NUM_THREADS=1

expect_exit() { # CODE CMD...: runs CMD, stderr to $T/err, checks the status
    local want=$1 rc=0
    shift
    "$@" >"$T/out.txt" 2>"$T/err" || rc=$?
    [ "$rc" -eq "$want" ] || fail "exit $rc, not $want, from: $* ($(cat "$T/err"))"
}
put() { echo "$2" > "$1/.$3"; mv "$1/.$3" "$1/$3"; }

# Lost commits: offsets/3 and state/3.h5 alone are damage, not batch 0.
D=$T/nc
mkdir -p "$D/in"
for i in 1 2 3 4; do put "$D/in" "w w w" "f$i"; done
W=("$WC" --source "$D/in" --checkpoint-location "$D/ck" --sink "$D/out"
   --trigger available-now --max-files-per-trigger 1 --quiet)
expect_exit 0 "${W[@]}"
[ "$(tail -1 "$D/out/batch-000000000003.csv")" = "w,12" ] || fail "first run"
rm "$D"/ck/commits/* "$D"/ck/offsets/{0,1,2}
expect_exit 2 "${W[@]}"
grep -q "commits/0 is missing (offsets/3 is there, and no commit" "$T/err" ||
    fail "lost commits: $(cat "$T/err")"
[ "$(tail -1 "$D/out/batch-000000000003.csv")" = "w,12" ] || fail "sink rewritten"
# offsets/0 kept, but the snapshots of later batches there: damage too
rm -rf "$D/ck" "$D/out"
expect_exit 0 "${W[@]}"
rm "$D"/ck/commits/* "$D"/ck/offsets/{1,2,3}
expect_exit 2 "${W[@]}"
grep -q "state/3.h5 is there, but it has committed no batch; batch 0 is planned" \
    "$T/err" || fail "lost commits and offsets: $(cat "$T/err")"
[ "$(tail -1 "$D/out/batch-000000000003.csv")" = "w,12" ] || fail "sink rewritten (2)"

# A location restored from a copy taken after batch 2.
D=$T/old
mkdir -p "$D/in"
for i in 1 2 3 4 5 6; do put "$D/in" "w" "f$i"; done
W=("$WC" --source "$D/in" --checkpoint-location "$D/ck" --sink "$D/out"
   --trigger available-now --quiet)
expect_exit 0 "${W[@]}" --max-files-per-trigger 1
cp -a "$D/ck" "$D/ck.full"
rm "$D"/ck/offsets/{3,4,5} "$D"/ck/commits/{3,4,5} "$D"/ck/state/{3,4,5}.h5
for i in 7 8; do put "$D/in" "w" "f$i"; done
expect_exit 2 "${W[@]}"
grep -q "sink directory $D/out holds batch-000000000005.csv" "$T/err" ||
    fail "stale location: $(cat "$T/err")"
grep -q "its last commit is batch 2 and no batch after it is planned" "$T/err" ||
    fail "stale location, last commit: $(cat "$T/err")"
[ ! -e "$D/out/batch-000000000006.csv" ] || fail "the refused run wrote"
mkdir "$D/moved"
mv "$D"/out/batch-00000000000{3,4,5}.csv "$D/moved/"
expect_exit 0 "${W[@]}"
[ "$(tail -1 "$(newest_output "$D/out")")" = "w,8" ] ||
    fail "after moving the newer files: $(tail -1 "$(newest_output "$D/out")")"

# A kill between batch 5's sink file and its commit resumes (the full copy).
rm -rf "$D/ck" "$D/out"/batch-*
mv "$D/ck.full" "$D/ck"
mv "$D"/moved/* "$D/out/"
rm "$D/ck/commits/5"
expect_exit 0 "${W[@]}"
[ "$(tail -1 "$(newest_output "$D/out")")" = "w,8" ] ||
    fail "resume after a kill before commit 5: $(tail -1 "$(newest_output "$D/out")")"

# ck/lock a directory: exit 2, as --help says.
D=$T/lk
mkdir -p "$D/in" "$D/ck/lock"
put "$D/in" "a" f1
expect_exit 2 "$WC" --source "$D/in" --checkpoint-location "$D/ck" --trigger once
grep -q "lock is a directory" "$T/err" || fail "lock dir: $(cat "$T/err")"
"$WC" --help | tr '\n' ' ' | grep -q "another refused restart.*lock file" ||
    fail "--help does not list the lock directory under exit 2"
"$WC" --help | tr '\n' ' ' | grep -q "SIGTERM, SIGINT or SIGUSR1: the batch under way" ||
    fail "--help does not name SIGUSR1"

# Options.
expect_exit 2 "$WC" --source "$D/in" --checkpoint-location "$T/ck2" --quiet=1
grep -q -- "--quiet takes no value (got '--quiet=1')" "$T/err" || fail "quiet=1: $(cat "$T/err")"
for v in 0x10 inf nan 0x1p4 " 5"; do
    expect_exit 2 "$WC" --source "$D/in" --checkpoint-location "$T/ck2" --poll "$v"
    grep -q -- "--poll: '$v' is not a duration" "$T/err" || fail "poll $v: $(cat "$T/err")"
done
expect_exit 2 "$WC" --source "$D/in" --checkpoint-location "$T/ck2" \
    --trigger processing-time=0x10s
[ ! -e "$T/ck2" ] || fail "a usage error made the location"

# SIGTERM before any batch commits (nothing in the source).
D=$T/term
mkdir -p "$D/in"
"$WC" --source "$D/in" --checkpoint-location "$D/ck" --sink "$D/out" 2>"$D/err" &
PID=$!
for _ in $(seq 200); do [ -e "$D/out/.ember-sink" ] && break; sleep 0.05; done
sleep 0.5 # the stream takes the signals over right after claiming the sink
kill -TERM "$PID"
rc=0
wait "$PID" || rc=$?
[ "$rc" -eq 75 ] || fail "SIGTERM before a batch: exit $rc ($(cat "$D/err"))"
grep -q "interrupted before any batch committed; run the same command again" "$D/err" ||
    fail "SIGTERM before a batch: $(cat "$D/err")"
! grep -q "no batch 0" "$D/err" || fail "SIGTERM before a batch: $(cat "$D/err")"

# Progress bytes: a file without a final line end counts its own bytes.
D=$T/bytes
mkdir -p "$D/in"
printf 'a b c' > "$D/in/.f"; mv "$D/in/.f" "$D/in/f"
expect_exit 0 "$WC" --source "$D/in" --checkpoint-location "$D/ck" --trigger once
grep -q "batch 0: 1 file, 5 bytes, 1 lines" "$T/err" || fail "bytes: $(cat "$T/err")"

# A snapshot copied in from another location of the same query (the query
# started over in a new location, the old one kept): refused by the
# location's query id, so the batch is replayed from the new location's
# own logs. It was taken as the new location's state: exit 0, old counts.
S="$T/snap"
mkdir -p "$S/in"
for i in 0 1 2 3 4 5; do put "$S/in" "w$i common" "f$i"; done
expect_exit 0 "$WC" --source "$S/in" --checkpoint-location "$S/ck" --sink "$S/out" \
    --trigger available-now --max-files-per-trigger 1 --retain 10 --quiet
mv "$S/ck" "$S/ck.old"
rm -r "$S/out"
expect_exit 0 "$WC" --source "$S/in" --checkpoint-location "$S/ck" --sink "$S/out" \
    --trigger available-now --max-files-per-trigger 3 --quiet
cp "$S/ck.old/state/1.h5" "$S/ck/state/1.h5"
put "$S/in" "new" f9
expect_exit 0 "$WC" --source "$S/in" --checkpoint-location "$S/ck" --sink "$S/out" \
    --trigger once
grep -q "another checkpoint location of this query" "$T/err" ||
    fail "another location's snapshot: not named: $(cat "$T/err")"
grep -q '^common,6$' "$S/out/batch-000000000002.csv" ||
    fail "another location's snapshot: wrong counts: $(cat "$S/out/batch-000000000002.csv")"

echo "stale location, messages: ok"
