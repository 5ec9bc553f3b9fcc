#!/usr/bin/env bash
# test_stream_corrupt.sh: damaged state snapshots.
#
# - The newest snapshot damaged: the restart warns, falls back to the
#   previous one, re-runs the batches after it from the offsets log, and
#   the result stays exact.
# - Every snapshot damaged after retention removed the early logs: the
#   restart fails clearly (exit 2, "the state is lost") and changes nothing.
# - A damaged offsets entry is named in a clear failure.
# - The newest snapshot missing: the restart warns as for a damaged one.
# - Damaged retained log entries the restart does not read (an older
#   offsets and an older commits entry) are named in warnings at once; the
#   run goes on, exact. The newest commits entry damaged: refused, the
#   message says deleting it runs its batch again, and after that the
#   result is exact.
set -euo pipefail
. "$(dirname "$0")/test_stream_lib.sh"

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/src"

run() {
    "$WC" --source "$T/src" --checkpoint-location "$T/ck" --sink "$T/out" \
        --trigger available-now --max-files-per-trigger 1 "$@"
}

# Overwrites 4 KiB in the middle of a file with garbage.
damage() {
    local size
    size=$(stat -c %s "$1")
    printf '%4096s' | tr ' ' 'Z' |
        dd of="$1" bs=1 seek=$((size / 2)) conv=notrunc status=none
}

for i in 1 2 3 4 5; do make_file "$T/src" "f$i" "$i" 2000; done
run --quiet || fail "first run"
newest=$(ls "$T/ck/state" | sort -n | tail -1)
[ "$newest" = 4.h5 ] || fail "expected state/4.h5, found $newest"
damage "$T/ck/state/4.h5"
make_file "$T/src" f6 6 2000
run 2>"$T/log" || fail "the run after damage failed: $(tail -3 "$T/log")"
grep -q "state snapshot .*/state/4.h5 cannot be used" "$T/log" ||
    fail "no fallback warning: $(cat "$T/log")"
grep -q "falling back to an older one" "$T/log" || fail "no fallback"
reference_count "$T/src" | cmp -s - "$(newest_output "$T/out")" ||
    fail "wrong result after the fallback"

# The newest snapshot removed: the same fallback, and a warning naming it.
newest=$(ls "$T/ck/state" | sort -n | tail -1)
rm "$T/ck/state/$newest"
make_file "$T/src" f6b 16 2000
run 2>"$T/log" || fail "the run after a removed snapshot failed: $(tail -3 "$T/log")"
grep -q "state snapshot .*/state/$newest, which commits/[0-9]* names, is missing; falling back" \
    "$T/log" || fail "no warning of the missing snapshot: $(cat "$T/log")"
reference_count "$T/src" | cmp -s - "$(newest_output "$T/out")" ||
    fail "wrong result after a removed snapshot"

# All snapshots damaged, early logs gone (retain 2): a clear failure.
rm -rf "$T/ck" "$T/out"
run --quiet --retain 2 || fail "second setup"
ls "$T/ck/offsets" | grep -qx 0 && fail "retention kept offsets/0"
for f in "$T/ck/state"/*.h5; do damage "$f"; done
cp -r "$T/ck" "$T/ck.before"
make_file "$T/src" f7 7 100
rc=0
run --retain 2 2>"$T/log" || rc=$?
[ "$rc" -eq 2 ] || fail "exit $rc, not 2, with every snapshot damaged"
grep -q "the state is lost: use a new location" "$T/log" || fail "unclear: $(cat "$T/log")"
diff -r -x lock "$T/ck.before" "$T/ck" >/dev/null || fail "a failed start changed the location"

# A damaged offsets entry: named.
rm -rf "$T/ck" "$T/out"
run --quiet || fail "third setup"
last=$(ls "$T/ck/offsets" | sort -n | tail -1)
sed -i 's/^files /filez /' "$T/ck/offsets/$last"
rc=0
run 2>"$T/log" || rc=$?
[ "$rc" -ne 0 ] || fail "a damaged offsets entry went unnoticed"
grep -q "offsets/$last: fails its checksum" "$T/log" || fail "unclear: $(cat "$T/log")"

# Older retained entries damaged: warned of at the restart, which does not
# need them, and the result stays exact.
rm -rf "$T/ck" "$T/out"
run --quiet || fail "fourth setup"
old_o=$(ls "$T/ck/offsets" | sort -n | head -1)
old_c=$(ls "$T/ck/commits" | sort -n | head -1)
: > "$T/ck/commits/$old_c"
sed -i 's/^files /filez /' "$T/ck/offsets/$old_o"
make_file "$T/src" f8 8 100
run 2>"$T/log" || fail "the run with damaged older entries failed: $(tail -3 "$T/log")"
grep -q "offsets/$old_o: fails its checksum" "$T/log" || fail "offsets/$old_o: $(cat "$T/log")"
grep -q "commits/$old_c: fails its checksum" "$T/log" || fail "commits/$old_c: $(cat "$T/log")"
grep -q "2 retained log entries are in .* damaged" "$T/log" || fail "no summary: $(cat "$T/log")"
reference_count "$T/src" | cmp -s - "$(newest_output "$T/out")" ||
    fail "wrong result with damaged older entries"

# The newest commit damaged: refused, and the message says that deleting it
# runs its batch again; done, the result is exact.
last=$(ls "$T/ck/commits" | sort -n | tail -1)
sed -i 's/^rows /rowz /' "$T/ck/commits/$last"
rc=0
run 2>"$T/log" || rc=$?
[ "$rc" -eq 2 ] || fail "exit $rc, not 2, with the newest commit damaged"
grep -q "commits/$last: fails its checksum .*; it is the newest commit: delete it and the next start runs batch $last again" \
    "$T/log" || fail "no advice for the newest commit: $(cat "$T/log")"
rm "$T/ck/commits/$last"
run 2>"$T/log" || fail "the run after deleting commits/$last failed: $(tail -3 "$T/log")"
reference_count "$T/src" | cmp -s - "$(newest_output "$T/out")" ||
    fail "wrong result after deleting the damaged newest commit"
echo "test_stream_corrupt: PASS"
