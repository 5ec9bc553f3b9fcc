#!/usr/bin/env bash
# test_loop_signal: SIGTERM and SIGUSR1 make ember-loopdemo finish its
# iteration, write a checkpoint and exit 75 (EMBER_EXIT_RESUMABLE); a run
# resumed from it (with another thread count) ends with exactly the result
# of an uninterrupted run.
#
# The policy would checkpoint only every 100000 iterations (and never for
# lineage depth), so a checkpoint
# of a mid-run iteration can only come from the signal.
set -uo pipefail

: "${EMBER_BIN:?EMBER_BIN must point at the bin directory of a build}"
demo=$EMBER_BIN/ember-loopdemo
[ -x "$demo" ] || { echo "test_loop_signal: FAIL: no $demo" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-loopsig.XXXXXX")
pid=
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "test_loop_signal: FAIL: $*" >&2; exit 1; }

# caught PID SIG: PID has a handler for SIG (its SigCgt mask, Linux).
caught() {
    local mask
    mask=$(sed -n 's/^SigCgt:[[:space:]]*//p' "/proc/$1/status" 2>/dev/null)
    [ -n "$mask" ] && (( (16#$mask >> ($(kill -l "$2") - 1)) & 1 ))
}

iters=300
common=(--iterations "$iters" --n 50000)
ref=$("$demo" "${common[@]}" --quiet --threads 2 | tail -n 1) || fail "reference run failed"
echo "reference: $ref"

for sig in TERM USR1; do
    dir=$tmp/$sig
    args=("${common[@]}" --checkpoint-dir "$dir" --checkpoint-every 100000 --max-depth 0)
    "$demo" "${args[@]}" --threads 4 --sleep-ms 5 >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    # Let it get going: its handlers in place (waited for, up to 60 s: a
    # loaded machine may take longer than any fixed pause to start it), then
    # a little more, for a few iterations.
    for _ in $(seq 1200); do
        caught "$pid" "$sig" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    caught "$pid" "$sig" || fail "SIG$sig: no handler for SIG$sig after 60 s: $(cat "$tmp/err")"
    sleep 0.1
    kill -s "$sig" "$pid" || fail "SIG$sig: the run ended too early"
    wait "$pid"
    st=$?
    pid=
    [ "$st" = 75 ] || { cat "$tmp/err" >&2; fail "SIG$sig: exit status $st, want 75"; }
    grep -q "interrupted after .* steps; checkpointed, resumable" "$tmp/err" \
        || fail "SIG$sig: no 'resumable' message: $(cat "$tmp/err")"
    files=$(cd "$dir" && ls ckpt-*.h5 2>/dev/null)
    [ "$(echo "$files" | grep -c .)" = 1 ] || fail "SIG$sig: want one checkpoint, have: $files"
    n=$((10#$(echo "$files" | sed 's/ckpt-\([0-9]*\)\.h5/\1/')))
    (( n > 0 && n < iters )) || fail "SIG$sig: checkpoint of iteration $n"
    # The message of the interrupted run names as many steps as the file.
    grep -q "interrupted after $n steps" "$tmp/err" || fail "SIG$sig: steps differ from $n"
    "$demo" "${args[@]}" --threads 1 --resume require >"$tmp/out" 2>"$tmp/err" \
        || { cat "$tmp/err" >&2; fail "SIG$sig: the resumed run failed"; }
    grep -q "resumed from .*ckpt-$(printf '%012d' "$n").h5" "$tmp/err" \
        || fail "SIG$sig: did not resume from iteration $n: $(cat "$tmp/err")"
    out=$(tail -n 1 "$tmp/out")
    [ "$out" = "$ref" ] || fail "SIG$sig: '$out' != reference '$ref'"
    echo "SIG$sig: exit 75 at iteration $n, resumed, result ok"
done
echo "test_loop_signal: PASS"
