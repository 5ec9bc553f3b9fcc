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
trap 'rm -rf "$work"' EXIT
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
# The whole run takes well under 0.1 s on a quiet machine, so a kill may
# come after it finished: such a run is discarded and the chain starts
# again, until 3 kills have landed in one chain of runs (up to 40 tries).
kills=0
for try in $(seq 40); do
    [ "$kills" -lt 3 ] || break
    before=$(newest)
    "$bin/ember-readme-loop" part > part.txt 2>> log.txt &
    pid=$!
    # kill once a checkpoint newer than the last run's is in place, after a
    # random further delay: inside an iteration or a checkpoint write
    for _ in $(seq 6000); do
        [ "$(newest)" != "$before" ] && break
        kill -0 "$pid" 2> /dev/null || break
        sleep 0.01
    done
    sleep "$(printf "0.%03d" $(( RANDOM % 15 )))"
    if kill -9 "$pid" 2> /dev/null; then
        kills=$((kills + 1))
        wait "$pid" 2> /dev/null || true
    else
        wait "$pid" || fail "a run exited with $?"
        rm -rf part
        kills=0
        : > log.txt
    fi
done
"$bin/ember-readme-loop" part > part.txt 2>> log.txt
cmp full.txt part.txt || fail "after $kills kills: $(cat part.txt), not $(cat full.txt)"
[ "$kills" -ge 1 ] || fail "no kill landed in 40 runs before the run finished"
grep -q "resumed from" log.txt || fail "no run resumed: $(cat log.txt)"

# SIGTERM: exit 75, and the message says after which iteration and where
# the checkpoint is (it used to end with an empty ": ").
"$bin/ember-readme-loop" term > /dev/null 2> term.txt &
pid=$!
for _ in $(seq 6000); do
    ls term 2> /dev/null | grep -q '^ckpt-.*\.h5$' && break
    sleep 0.01
done
kill -TERM "$pid"
st=0
wait "$pid" || st=$?
[ "$st" -eq 75 ] || fail "SIGTERM: exit $st, wanted 75: $(cat term.txt)"
grep -q "^interrupted: .*: a signal came after iteration [0-9]*; its checkpoint is in term$" \
    term.txt || fail "SIGTERM: the message does not say where: $(cat term.txt)"
echo "PASS ($kills kills; $try runs)"
