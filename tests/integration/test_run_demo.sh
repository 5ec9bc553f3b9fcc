#!/usr/bin/env bash
# `make run` (scripts/run-demo.sh): the karate PageRank stopped after
# iteration 15 by --stop-at (exit 75, checkpoint at 15), resumed by the same
# command, and its ranks byte-identical to an uninterrupted run's. The stop
# is at an iteration, not a time, so it holds on any machine.
set -euo pipefail
: "${EMBER_BIN:?}" "${EMBER_SRC:?}"
fail() { echo "test_run_demo: FAIL: $*" >&2; exit 1; }
out=$(bash "$EMBER_SRC/scripts/run-demo.sh" "$EMBER_BIN" 2>&1) || { echo "$out" >&2; fail "run-demo.sh failed"; }
echo "$out"
grep -q "exit status 75" <<<"$out" || fail "the stopped run did not exit 75"
grep -q "ckpt-000000000015.h5" <<<"$out" || fail "no checkpoint at iteration 15"
grep -q "resumed" <<<"$out" || fail "the second run did not say it resumed"
grep -q "34 ranks, byte-identical: PASS" <<<"$out" || fail "no byte-identical comparison"
[ "$(grep -cE '^ +[0-9]+ +[0-9]+ +0\.[0-9]+$' <<<"$out")" -eq 10 ] || fail "not 10 top vertices"
echo "test_run_demo: PASS"
