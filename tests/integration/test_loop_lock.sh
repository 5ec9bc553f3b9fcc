#!/usr/bin/env bash
# test_loop_lock: one checkpoint directory, one live run. A second run on
# the directory stops at once, non-zero, naming the holder's pid. After the
# holder is killed with kill -9 (no clean-up at all), the lock it left is
# not stale: the next run gets the directory and resumes.
set -uo pipefail

: "${EMBER_BIN:?EMBER_BIN must point at the bin directory of a build}"
demo=$EMBER_BIN/ember-loopdemo
[ -x "$demo" ] || { echo "test_loop_lock: FAIL: no $demo" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-looplock.XXXXXX")
pid=
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "test_loop_lock: FAIL: $*" >&2; exit 1; }

dir=$tmp/ck
args=(--n 20000 --checkpoint-dir "$dir" --checkpoint-every 5)
"$demo" "${args[@]}" --iterations 100000 --sleep-ms 20 >/dev/null 2>"$tmp/err1" &
pid=$!
for ((i = 0; i < 100; i++)); do
    [ "$(cat "$dir/ember.lock" 2>/dev/null)" = "$pid" ] && break
    sleep 0.1
done
[ "$(cat "$dir/ember.lock" 2>/dev/null)" = "$pid" ] || fail "the first run did not take the lock"
# A checkpoint written (waited for, not slept for: on a loaded machine the
# first one can take longer than any fixed pause).
for ((i = 0; i < 300; i++)); do
    compgen -G "$dir/ckpt-*.h5" > /dev/null && break
    sleep 0.1
done
compgen -G "$dir/ckpt-*.h5" > /dev/null || fail "the first run wrote no checkpoint in 30 s"

SECONDS=0
timeout 20 "$demo" "${args[@]}" --iterations 10 >"$tmp/out2" 2>"$tmp/err2"
st=$?
(( SECONDS <= 5 )) || fail "the second run took $SECONDS s to give up"
[ "$st" = 1 ] || fail "the second run: exit status $st, want 1"
grep -q "checkpoint dir $dir is in use by process $pid" "$tmp/err2" \
    || fail "the second run's message does not name pid $pid: $(cat "$tmp/err2")"
[ ! -s "$tmp/out2" ] || fail "the second run printed a result"
kill -0 "$pid" 2>/dev/null || fail "the first run died"
echo "second run refused: $(tail -n 1 "$tmp/err2")"
# Started by an MPI launcher (as its environment says) on a context of one
# rank: the refusal says how the ranks join (EMBER_MPI, ember_ctx_set_comm).
OMPI_COMM_WORLD_SIZE=2 timeout 20 "$demo" "${args[@]}" --iterations 10 >/dev/null 2>"$tmp/err2m"
grep -q "in use by process $pid (this process is one of 2 that an MPI launcher started, but its context has one rank: .*ember_ctx_set_comm" \
    "$tmp/err2m" || fail "no hint under an MPI launcher: $(cat "$tmp/err2m")"
grep -q "MPI launcher" "$tmp/err2" && fail "the hint without a launcher: $(cat "$tmp/err2")"

kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=
[ "$(cat "$dir/ember.lock")" != "" ] || fail "the lock file is empty"

"$demo" "${args[@]}" --iterations 10 --resume require >"$tmp/out3" 2>"$tmp/err3" \
    || fail "the run after kill -9 was refused: $(cat "$tmp/err3")"
grep -q "resumed from" "$tmp/err3" || fail "the run after kill -9 did not resume: $(cat "$tmp/err3")"
grep -q '^result ' "$tmp/out3" || fail "no result after kill -9"
echo "after kill -9: $(grep 'resumed from' "$tmp/err3")"
echo "test_loop_lock: PASS"
