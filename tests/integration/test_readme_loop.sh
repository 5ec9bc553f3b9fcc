#!/usr/bin/env bash
# The README's resumable loop (tests/programs/ember-readme-loop.c) is the
# code the README shows, byte for byte, so it cannot rot: this checks the
# copy, runs it, kills it with SIGKILL at random moments (each after a new
# checkpoint is in place) and reruns it until it finishes, and compares its
# result with an uninterrupted run.
set -euo pipefail
bin=${EMBER_BIN:?}
src=${EMBER_SRC:?}
work=$(mktemp -d)
trap 'kill -9 "${pid:-}" 2> /dev/null || true; rm -rf "$work"' EXIT # (a run held stopped, too)
cd "$work"

fail() { echo "FAIL: $*" >&2; exit 1; }

prog=$src/tests/programs/ember-readme-loop.c
first=$(head -1 "$prog")
awk -v first="$first" '$0 == first { on = 1 } on && /^```/ { exit } on { print }' \
    "$src/README.md" > readme.c
[ -s readme.c ] || fail "the README does not show $prog"
diff readme.c "$prog" > diff.txt || fail "the README's loop differs from $prog: $(cat diff.txt)"
[ "$(wc -l < readme.c)" -le 60 ] || fail "the README's loop is over 60 lines"

"$bin/ember-readme-loop" full 2> /dev/null > full.txt
grep -q "^sum [0-9]* after 200 iterations$" full.txt || fail "output: $(cat full.txt)"

RANDOM=${EMBER_TEST_SEED:-515}
newest() { ls part 2> /dev/null | grep '^ckpt-.*\.h5$' | tail -1 || true; }
# The whole run takes well under 0.1 s on a quiet machine: less than the
# test's own look for a new checkpoint (a sleep, ls and grep) plus a random
# delay, so a kill timed by the wall clock came after the run had ended
# more often the faster the machine (3 kills in a chain then never landed).
# The run is held stopped (SIGSTOP) while the test looks, and let go
# (SIGCONT) 1 ms at a time: it only moves in those slices, so on any
# machine the kill finds it 1 to 3 slices past a new checkpoint, inside an
# iteration or a checkpoint write. A run that still ends first (exit 0) is
# discarded and the chain starts again (up to 40 tries).
exec 9<> <(:) # read -t on a pipe nobody writes: a short sleep, no fork
slice() {
    kill -CONT "$pid" 2> /dev/null || true
    read -r -t 0.001 -u 9 _ || true
    kill -STOP "$pid" 2> /dev/null || true
}
running() { # not ended (a zombie has ended)
    local line
    line=$(cat "/proc/$pid/stat" 2> /dev/null) || return 1
    set -- ${line##*) }
    [ "$1" != Z ]
}
kills=0
for try in $(seq 40); do
    [ "$kills" -lt 3 ] || break
    before=$(newest)
    "$bin/ember-readme-loop" part > part.txt 2>> log.txt &
    pid=$!
    kill -STOP "$pid"
    for _ in $(seq 60000); do # a minute of slices, and the looks between them
        slice
        [ "$(newest)" != "$before" ] && break
        running || break
    done
    for _ in $(seq $(( RANDOM % 3 ))); do slice; done
    kill -9 "$pid" 2> /dev/null || true
    st=0
    wait "$pid" 2> /dev/null || st=$?
    pid= # (waited for: the trap must not kill another process of that number)
    if [ "$st" -eq 137 ]; then
        kills=$((kills + 1))
    elif [ "$st" -eq 0 ]; then
        rm -rf part
        kills=0
        : > log.txt
    else
        fail "a run exited with $st: $(tail -n 3 log.txt)"
    fi
done
"$bin/ember-readme-loop" part > part.txt 2>> log.txt
cmp full.txt part.txt || fail "after $kills kills: $(cat part.txt), not $(cat full.txt)"
[ "$kills" -ge 3 ] || fail "3 kills did not land in one chain of runs in 40 tries"
grep -q "resumed from" log.txt || fail "no run resumed: $(cat log.txt)"

# SIGTERM: exit 75, and the message says after which iteration and where
# the checkpoint is (it used to end with an empty ": ").
# (Held stopped while the test looks, as above: the signal comes a slice
# after the first checkpoint, well before the end on any machine.)
"$bin/ember-readme-loop" term > /dev/null 2> term.txt &
pid=$!
kill -STOP "$pid"
for _ in $(seq 60000); do
    slice
    ls term 2> /dev/null | grep -q '^ckpt-.*\.h5$' && break
    running || break
done
kill -TERM "$pid"
kill -CONT "$pid" 2> /dev/null || true
st=0
wait "$pid" || st=$?
pid=
[ "$st" -eq 75 ] || fail "SIGTERM: exit $st, wanted 75: $(cat term.txt)"
grep -q "^interrupted: .*: a signal came after iteration [0-9]*; its checkpoint is in term$" \
    term.txt || fail "SIGTERM: the message does not say where: $(cat term.txt)"
echo "PASS ($kills kills; $try runs)"
