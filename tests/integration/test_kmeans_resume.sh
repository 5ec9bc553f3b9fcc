#!/usr/bin/env bash
# Kill and resume: ember-kmeans killed with SIGKILL at random moments, again
# and again, each time resumed with another thread count, finishes with an
# output file identical to an uninterrupted run's. Also: SIGTERM gives exit
# 75 after a checkpoint, a resume with other parameters is refused (exit 2),
# and a finished run started again does no more iterations.
set -euo pipefail
# The outputs record when they were written (`created`); a fixed
# SOURCE_DATE_EPOCH makes two runs' files comparable byte for byte.
export SOURCE_DATE_EPOCH=1700000000
: "${EMBER_BIN:?}" "${EMBER_SRC:?}"
export LC_ALL=C
km=$EMBER_BIN/ember-kmeans
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-kmeans-resume.XXXXXX")
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "test_kmeans_resume: FAIL: $*" >&2; exit 1; }

# Uniform points converge slowly: about a hundred iterations.
awk 'BEGIN { srand(7); print "a,b,c";
  for (i = 0; i < 300000; i++) printf "%.6f,%.6f,%.6f\n", rand(), rand(), rand() }' >"$tmp/pts.csv"
args=(--input "$tmp/pts.csv" --k 24 --init random --seed 5 --tolerance 0 --iterations 400)
ck=(--checkpoint-dir "$tmp/ck" --checkpoint-every 1)

"$km" "${args[@]}" --threads 2 --quiet --output "$tmp/ref.h5" >"$tmp/ref.out" \
  || fail "uninterrupted run"
ref_iters=$(sed -n 's/^iterations: //p' "$tmp/ref.out")
[ "${ref_iters:-0}" -ge 20 ] || fail "the reference run took only ${ref_iters:-0} iterations"

# Waits until the directory holds a checkpoint newer than $1 (or the
# process ends), then a random 0 to 0.09 s more.
wait_progress() {
  local before=$1 i
  for i in $(seq 1 1000); do
    kill -0 "$pid" 2>/dev/null || return 0
    local newest
    newest=$(ls "$tmp/ck" 2>/dev/null | grep -c '^ckpt-.*\.h5$' || true)
    [ "$newest" -gt 0 ] && [ "$(ls "$tmp/ck" | grep '^ckpt-.*\.h5$' | tail -1)" != "$before" ] && break
    sleep 0.01
  done
  sleep "0.0$((RANDOM % 10))"
}

kills=0
last=none
for t in 1 4 2 3 1 4; do
  "$km" "${args[@]}" "${ck[@]}" --threads "$t" --quiet --output "$tmp/out.h5" \
    >/dev/null 2>>"$tmp/kill.err" &
  pid=$!
  wait_progress "$last"
  if kill -9 "$pid" 2>/dev/null; then
    kills=$((kills + 1))
  fi
  wait "$pid" 2>/dev/null || true
  pid=
  last=$(ls "$tmp/ck" | grep '^ckpt-.*\.h5$' | tail -1 || echo none)
done
[ "$kills" -ge 2 ] || fail "only $kills of 6 runs were still running when killed"

# SIGTERM: finishes the iteration, checkpoints, exits 75.
"$km" "${args[@]}" "${ck[@]}" --threads 2 --quiet --output "$tmp/out.h5" \
  >/dev/null 2>"$tmp/term.err" &
pid=$!
wait_progress "$last" # past start-up: a SIGTERM before the handlers kills it
if kill -TERM "$pid" 2>/dev/null; then
  set +e
  wait "$pid"
  st=$?
  set -e
  [ "$st" = 75 ] || [ "$st" = 0 ] || { cat "$tmp/term.err"; fail "SIGTERM gave exit $st, not 75"; }
  [ "$st" = 0 ] || grep -q 'resume' "$tmp/term.err" || fail "no resume hint after SIGTERM"
else
  wait "$pid" || true
fi
pid=

# Other parameters: refused, naming what differs.
set +e
"$km" --input "$tmp/pts.csv" --k 23 --init random --seed 5 --tolerance 0 "${ck[@]}" \
  --quiet >/dev/null 2>"$tmp/mismatch.err"
st=$?
set -e
[ "$st" = 2 ] || { cat "$tmp/mismatch.err"; fail "resume with --k 23 gave exit $st, not 2"; }

# The last resume, with yet another thread count, runs to the end.
"$km" "${args[@]}" "${ck[@]}" --threads 3 --output "$tmp/out.h5" >"$tmp/final.out" 2>"$tmp/final.err" \
  || { cat "$tmp/final.err"; fail "final resume"; }
grep -q 'resumed from .* at iteration' "$tmp/final.err" || { cat "$tmp/final.err"; fail "the final run did not resume"; }
if ! cmp -s "$tmp/ref.h5" "$tmp/out.h5"; then
  command -v h5dump >/dev/null && diff <(h5dump "$tmp/ref.h5") <(h5dump "$tmp/out.h5") | head -20 >&2
  fail "resumed output differs from the uninterrupted run"
fi
grep -q "^iterations: $ref_iters\$" "$tmp/final.out" || fail "iteration count differs"

# Started again after finishing: restores the final checkpoint, no work.
"$km" "${args[@]}" "${ck[@]}" --threads 1 --quiet --verify --output "$tmp/again.h5" \
  >"$tmp/again.out" || fail "rerun of a finished run"
cmp -s "$tmp/ref.h5" "$tmp/again.h5" || fail "rerun output differs"
grep -q '^Verification: PASS$' "$tmp/again.out" || fail "rerun does not verify"
echo "test_kmeans_resume: PASS ($kills kills)"
