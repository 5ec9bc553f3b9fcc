#!/usr/bin/env bash
# test_loop_kill: kill -9 ember-loopdemo at random moments, many of them
# during a checkpoint write, and restart it (each time with another thread
# count than the run before) until it finishes. Every finished job must
# print exactly the result of an uninterrupted run without checkpoints.
#
# Checkpoints are written in the loop's default mode (in the background on
# one process, docs/design.md), every third job with --checkpoint-sync.
# Kills are counted only when the process was still running (exit status
# 137); a kill that lands while a NAME.tmp exists landed during a write
# (ckpt-spare.tmp, the retired file kept for the next write, does not
# count, nor does a NAME.tmp an earlier killed run left). The loop goes on
# until at least 24 kills, 3 of them during a write, 2 of those in the
# default mode. Half the kills come at a random
# moment from the start, half once a write is seen in flight (plus a random
# delay): on a loaded machine a run may not write at all within a fixed
# window from its start.
# EMBER_TEST_SEED reproduces a run's random choices.
set -uo pipefail

: "${EMBER_BIN:?EMBER_BIN must point at the bin directory of a build}"
demo=$EMBER_BIN/ember-loopdemo
[ -x "$demo" ] || { echo "test_loop_kill: FAIL: no $demo" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-loopkill.XXXXXX")
pid=
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "test_loop_kill: FAIL: $*" >&2; exit 1; }

seed=${EMBER_TEST_SEED:-$$}
RANDOM=$seed
echo "seed $seed (EMBER_TEST_SEED=$seed reproduces the choices)"

iters=200
common=(--iterations "$iters" --sleep-ms 2 --quiet)
SECONDS=0

ref=$("$demo" "${common[@]}" --threads 1 | tail -n 1) || fail "reference run failed"
case $ref in result*) ;; *) fail "reference printed '$ref'" ;; esac
echo "reference ($SECONDS s): $ref"

pick_threads() { # a thread count other than $1
    local t
    while :; do
        t=$(( (1 << (RANDOM % 3)) ))
        [ "$t" != "$1" ] && { echo "$t"; return; }
    done
}

# A write of this run's in flight: a NAME.tmp changed since it started (one
# that an earlier killed run left, until this run's start-up removes it, is
# not this run's write).
writing() {
    find "$dir" -maxdepth 1 -name 'ckpt-[0-9]*.h5.tmp' -cnewer "$tmp/started" \
        2>/dev/null | grep -q .
}

kills=0 midwrite=0 middefault=0 jobs=0 starts=0
prev=0
while (( (kills < 24 || midwrite < 3 || middefault < 2) && kills < 120 )); do
    jobs=$((jobs + 1))
    dir=$tmp/job$jobs
    every=$((1 + RANDOM % 3))
    args=("${common[@]}" --checkpoint-dir "$dir" --checkpoint-every "$every")
    mode=default
    if (( jobs % 3 == 0 )); then
        mode=sync
        args+=(--checkpoint-sync)
    fi
    for ((k = 0; k < 6; k++)); do
        t=$(pick_threads "$prev")
        prev=$t
        starts=$((starts + 1))
        touch "$tmp/started"
        "$demo" "${args[@]}" --threads "$t" >"$tmp/out" 2>"$tmp/err" &
        pid=$!
        if (( RANDOM % 2 )); then
            # at a random moment from the start: in start-up, an iteration
            # or a write, whatever the machine's speed gives
            ms=$((40 + RANDOM % 400))
            sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
        else
            # aimed at a write: once one is seen in flight (waited for, not
            # slept for: a loaded machine may take longer than any fixed
            # pause to start writing), then a random 0 to 9 ms more; it
            # counts only if a write is still unfinished when the kill lands
            for ((w = 0; w < 3000; w++)); do
                writing && break
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.01
            done
            sleep "0.00$((RANDOM % 10))"
        fi
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null # (no "Killed" line from the shell)
        st=$?
        pid=
        if [ "$st" = 137 ]; then
            kills=$((kills + 1))
            if writing; then
                midwrite=$((midwrite + 1))
                [ "$mode" = default ] && middefault=$((middefault + 1))
            fi
        elif [ "$st" = 0 ]; then
            break # it finished before the kill
        else
            cat "$tmp/err" >&2
            fail "job $jobs: exit status $st (threads $t)"
        fi
    done
    t=$(pick_threads "$prev")
    prev=$t
    starts=$((starts + 1))
    "$demo" "${args[@]}" --threads "$t" >"$tmp/out" 2>"$tmp/err" \
        || { cat "$tmp/err" >&2; fail "job $jobs: final run failed"; }
    out=$(tail -n 1 "$tmp/out")
    [ "$out" = "$ref" ] || fail "job $jobs ($mode, every $every, last threads $t): '$out' != reference '$ref'"
    ! compgen -G "$dir/*.tmp" >/dev/null || fail "job $jobs: a .tmp file was left: $(ls "$dir")"
    n=$(ls "$dir" | grep -c '^ckpt-.*\.h5$')
    [ "$n" -le 2 ] || fail "job $jobs: $n checkpoints kept, retention is 2"
    [ -f "$dir/ckpt-$(printf '%012d' "$iters").h5" ] || fail "job $jobs: no final checkpoint"
    echo "job $jobs: $mode, every $every, kills so far $kills ($midwrite during a write), result ok"
done

(( kills >= 24 )) || fail "only $kills kills landed"
(( midwrite >= 3 )) || fail "only $midwrite kills landed during a checkpoint write"
(( middefault >= 2 )) || fail "only $middefault kills landed during a write in the default mode"
echo "test_loop_kill: PASS: $kills kills ($midwrite during a checkpoint write, $middefault of them in the default mode), $jobs jobs, $starts starts, ${SECONDS} s"
