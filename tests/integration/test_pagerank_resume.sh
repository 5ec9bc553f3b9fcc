#!/usr/bin/env bash
# ember-pagerank killed with SIGKILL at random moments, several times, and
# resumed each time with another thread count, ends with ranks bit-identical
# (%.17g text) to an uninterrupted run. Also: SIGTERM checkpoints and exits
# 75; a resume with other parameters is refused (exit 2); a finished run
# restarted does no work again.
set -euo pipefail
bin=${EMBER_BIN:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

fail() { echo "FAIL: $*" >&2; exit 1; }

"$bin/ember-gen" kron --scale 14 --edge-factor 16 --seed 3 --output g.h5 --quiet
# 6000 iterations: about a second here, so six kills land well before the
# end on a machine several times faster.
args=(--input g.h5 --iterations 6000 --tolerance 0 --quiet)

"$bin/ember-pagerank" "${args[@]}" --threads 2 --output full.csv

# Kills at random moments: after a random number of further iterations
# (read from the metrics file, which a resumed run appends to), plus a
# random delay, so they land inside iterations and inside checkpoint
# writes alike. RANDOM is seeded so a failure can be replayed.
RANDOM=${EMBER_TEST_SEED:-4242}
last_iteration() {
    [ -f part.jsonl ] && sed -n '$s/^{"iteration": \([0-9]*\),.*/\1/p' part.jsonl
    return 0
}
kills=0
finished=0
while [ "$kills" -lt 6 ]; do
    threads=$(( RANDOM % 3 + 1 ))
    done_before=$(last_iteration)
    target=$(( ${done_before:-0} + RANDOM % 150 + 5 ))
    "$bin/ember-pagerank" "${args[@]}" --threads "$threads" --output part.csv \
        --checkpoint-dir ck --checkpoint-every 10 --keep 3 --metrics part.jsonl &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        now=$(last_iteration)
        [ "${now:-0}" -ge "$target" ] && break
        sleep 0.01
    done
    sleep "$(printf "0.%03d" $(( RANDOM % 20 )))"
    if kill -9 "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null || true
        kills=$((kills + 1))
    else
        wait "$pid" || fail "a run exited with $?"
        finished=1
        break
    fi
done
[ "$kills" -ge 3 ] || fail "only $kills kills landed before the run finished"
if [ "$finished" = 0 ]; then
    "$bin/ember-pagerank" "${args[@]}" --threads 3 --output part.csv \
        --checkpoint-dir ck --checkpoint-every 10 --keep 3 --metrics part.jsonl
fi
cmp full.csv part.csv || fail "ranks after $kills kills differ from the uninterrupted run"
ls ck/ckpt-*.h5 >/dev/null || fail "no checkpoint left"
[ "$(ls ck/ckpt-*.h5 | wc -l)" -le 3 ] || fail "--keep 3 kept more"

# A finished run restarted reads its final checkpoint and does no work.
"$bin/ember-pagerank" "${args[@]}" --threads 1 --output again.csv \
    --checkpoint-dir ck --checkpoint-every 10 --keep 3 --metrics again.jsonl
cmp full.csv again.csv || fail "restarting a finished run changed the ranks"
grep -q '"iteration"' again.jsonl && fail "a finished run restarted ran iterations again"
grep -q '"event": "done", "iterations": 6000' again.jsonl || fail "no done line: $(cat again.jsonl)"

# Other parameters: refused with a message naming the difference.
set +e
"$bin/ember-pagerank" "${args[@]}" --damping 0.5 --output x.csv --checkpoint-dir ck 2> err.txt
rc=$?
set -e
[ "$rc" = 2 ] || fail "a resume with another damping exited $rc, not 2"
grep -q "damping=0.85 (checkpoint) vs damping=0.5" err.txt || fail "message: $(cat err.txt)"

# SIGTERM: finish the iteration, checkpoint, exit 75; then resume.
rm -rf ck2
"$bin/ember-pagerank" "${args[@]}" --iterations 100000 --threads 2 --output t.csv \
    --checkpoint-dir ck2 --checkpoint-every 1000 --metrics t.jsonl &
pid=$!
for _ in $(seq 1 100); do
    grep -q '"iteration": 3,' t.jsonl 2>/dev/null && break
    sleep 0.05
done
kill -TERM "$pid"
set +e
wait "$pid"
rc=$?
set -e
[ "$rc" = 75 ] || fail "SIGTERM gave exit $rc, not 75"
ls ck2/ckpt-*.h5 >/dev/null || fail "SIGTERM left no checkpoint"
grep -q '"checkpoint": true' t.jsonl || fail "the metrics do not show the checkpoint"
grep -q '"event": "interrupted"' t.jsonl || fail "no interrupted line in the metrics"
echo "PASS: $kills kills, resumed bit-identical"
