#!/usr/bin/env bash
# ember-sssp killed with SIGKILL at random moments (inside rounds and inside
# checkpoint writes), several times, and resumed each time at 1 or 2
# threads, ends with distances bit-identical (cmp) to an uninterrupted run,
# for every plan, after the same number of rounds. The graph is a weighted
# chain with shortcuts, so the run
# takes about a thousand rounds (enough that the kills land on a fast
# machine too). Also: a resume with another --source is
# refused (exit 2), and a finished run restarted does no work again.
set -euo pipefail
bin=${EMBER_BIN:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

fail() { echo "FAIL: $*" >&2; exit 1; }

awk 'BEGIN { n = 1500; for (i = 0; i + 1 < n; i++) { print i, i + 1, 1 + (i * 7919) % 13
     if (i + 3 < n) print i, i + 3, 20 + (i * 104729) % 17 } }' > chain.el
RANDOM=${EMBER_TEST_SEED:-8118}
last_round() {
    [ -f part.jsonl ] && sed -n '$s/^{"iteration": \([0-9]*\),.*/\1/p' part.jsonl
    return 0
}

rounds() { sed -n 's/.* in \([0-9]*\) rounds.*/\1/p' "$1"; }

for plan in pull shuffle push delta; do
    args=(--input chain.el --undirected --source 0 --plan "$plan" --partitions 3)
    "$bin/ember-sssp" "${args[@]}" --threads 2 --output full.csv --verify --quiet > v.txt
    grep -q "^Verification: PASS" v.txt || fail "$plan: $(cat v.txt)"
    rm -rf ck part.jsonl log.txt
    kills=0
    finished=0
    while [ "$kills" -lt 5 ]; do
        threads=$(( RANDOM % 2 + 1 ))
        done_before=$(last_round)
        target=$(( ${done_before:-0} + RANDOM % 40 + 3 ))
        "$bin/ember-sssp" "${args[@]}" --threads "$threads" --output part.csv \
            --checkpoint-dir ck --checkpoint-every 5 --keep 2 --metrics part.jsonl \
            > out.txt 2>> log.txt &
        pid=$!
        while kill -0 "$pid" 2>/dev/null; do
            now=$(last_round)
            [ "${now:-0}" -ge "$target" ] && break
            sleep 0.005
        done
        sleep "$(printf "0.%03d" $(( RANDOM % 10 )))"
        if kill -9 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null || true
            kills=$((kills + 1))
        else
            wait "$pid" || fail "$plan: a run exited with $?"
            finished=1
            break
        fi
    done
    [ "$kills" -ge 2 ] || fail "$plan: only $kills kills landed before the run finished"
    if [ "$finished" = 0 ]; then
        "$bin/ember-sssp" "${args[@]}" --threads 1 --output part.csv \
            --checkpoint-dir ck --checkpoint-every 5 --keep 2 --metrics part.jsonl \
            > out.txt 2>> log.txt
    fi
    cmp full.csv part.csv || fail "$plan: distances after $kills kills differ"
    [ "$(rounds out.txt)" = "$(rounds v.txt)" ] ||
        fail "$plan: $(rounds out.txt) rounds after $kills kills, $(rounds v.txt) without"
    grep -q "ember-sssp: resumed from .* at iteration [1-9]" log.txt ||
        fail "$plan: no run resumed from a checkpoint: $(grep resumed log.txt)"
    grep -q '"restored": \|"iteration"' part.jsonl || true

    # A finished run restarted reads its final checkpoint and does no work.
    "$bin/ember-sssp" "${args[@]}" --threads 2 --output again.csv \
        --checkpoint-dir ck --checkpoint-every 5 --metrics again.jsonl \
        --quiet
    cmp full.csv again.csv || fail "$plan: restarting a finished run changed the distances"
    grep -q '"iteration"' again.jsonl && fail "$plan: a finished run restarted ran rounds"

    # Another source: refused, naming the difference.
    set +e
    "$bin/ember-sssp" "${args[@]}" --source 5 --output x.csv --checkpoint-dir ck 2> err.txt
    rc=$?
    set -e
    [ "$rc" = 2 ] || fail "$plan: a resume with another source exited $rc, not 2"
    grep -q "source=0 (checkpoint) vs source=5" err.txt || fail "message: $(cat err.txt)"
    echo "$plan: $kills kills, resumed bit-identical"
done
echo "PASS"
