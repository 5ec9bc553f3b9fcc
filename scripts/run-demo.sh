#!/usr/bin/env bash
# The main job of `make run`: ember's main feature in a few seconds, on the
# bundled karate club graph (data/karate.el).
#   1. PageRank, uninterrupted;
#   2. the same run with a checkpoint directory, stopped after iteration 15
#      by --stop-at 15 (the program signals itself, as a batch system's
#      SIGTERM would: checkpoint, exit 75), so the stop lands at the same
#      iteration on any machine, however fast;
#   3. the same command again: it resumes from the checkpoint and finishes;
#   4. the resumed ranks compared byte for byte with the uninterrupted ones.
# Usage: bash scripts/run-demo.sh BIN_DIR (build/bin). Exit 0 when they are
# equal, 1 otherwise.
set -uo pipefail
bin=${1:?usage: run-demo.sh BIN_DIR}
src=$(cd "$(dirname "$0")/.." && pwd)
pr=$bin/ember-pagerank
[ -x "$pr" ] || { echo "run-demo: $pr is missing (make build)" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-run.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
graph=$src/data/karate.el
args=(--input "$graph" --undirected)

say() { printf '%s\n' "$*"; }
say "== ember: PageRank of Zachary's karate club (data/karate.el): stop, resume, compare"

say "-- 1. uninterrupted run"
"$pr" "${args[@]}" --quiet --output "$tmp/uninterrupted.csv" || exit 1

run=("$pr" "${args[@]}" --output "$tmp/resumed.csv" --checkpoint-dir "$tmp/ck"
     --checkpoint-every 10 --stop-at 15)
say "-- 2. the same with checkpoints, stopped after iteration 15:"
say "      ember-pagerank --input data/karate.el --undirected --checkpoint-dir CK --checkpoint-every 10 --stop-at 15"
"${run[@]}" --quiet 2>"$tmp/stop.log"
rc=$?
say "      exit status $rc (75: checkpointed, run again to resume); checkpoints: $(cd "$tmp/ck" && ls ckpt-*.h5 | tr '\n' ' ')"
[ "$rc" -eq 75 ] || { cat "$tmp/stop.log" >&2; say "run-demo: expected exit 75 from the stopped run" >&2; exit 1; }
[ ! -e "$tmp/resumed.csv" ] || { say "run-demo: the stopped run wrote its output" >&2; exit 1; }

say "-- 3. the same command again: resumes from the checkpoint and finishes"
"${run[@]}" >"$tmp/resume.log" 2>&1
rc=$?
grep -E "resumed|converged" "$tmp/resume.log" | sed 's/^/      /'
[ "$rc" -eq 0 ] || { cat "$tmp/resume.log" >&2; say "run-demo: the resumed run failed (exit $rc)" >&2; exit 1; }

say "-- 4. resumed result vs uninterrupted result"
if cmp -s "$tmp/uninterrupted.csv" "$tmp/resumed.csv"; then
  say "      $(grep -c '^[0-9]' "$tmp/resumed.csv") ranks, byte-identical: PASS"
else
  say "      the ranks differ: FAIL" >&2
  diff "$tmp/uninterrupted.csv" "$tmp/resumed.csv" | head >&2
  exit 1
fi
say "-- top 10 vertices:"
"$pr" "${args[@]}" --quiet --top 10 | grep -v '^ember-pagerank: ' | sed 's/^/      /'
