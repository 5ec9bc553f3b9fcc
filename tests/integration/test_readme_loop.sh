#!/usr/bin/env bash
# The README's resumable loop (tests/programs/ember-readme-loop.c) is the
# code the README shows, byte for byte, so it cannot rot: this checks the
# copy, runs it, kills it with SIGKILL at random moments and reruns it
# until it finishes, and compares its result with an uninterrupted run.
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
[ "$(wc -l < readme.c)" -lt 60 ] || fail "the README's loop is not under 60 lines"

"$bin/ember-readme-loop" full 2> /dev/null > full.txt
grep -q "^sum [0-9]* after 200 iterations$" full.txt || fail "output: $(cat full.txt)"

RANDOM=${EMBER_TEST_SEED:-515}
kills=0
for _ in 1 2 3 4; do
    "$bin/ember-readme-loop" part > part.txt 2>> log.txt &
    pid=$!
    sleep "$(printf "0.%03d" $(( RANDOM % 400 + 50 )))"
    if kill -9 "$pid" 2> /dev/null; then
        kills=$((kills + 1))
        wait "$pid" 2> /dev/null || true
    else
        wait "$pid" || fail "a run exited with $?"
    fi
done
"$bin/ember-readme-loop" part > part.txt 2>> log.txt
cmp full.txt part.txt || fail "after $kills kills: $(cat part.txt), not $(cat full.txt)"
grep -q "resumed from" log.txt || fail "no run resumed: $(cat log.txt)"
echo "PASS ($kills kills)"
