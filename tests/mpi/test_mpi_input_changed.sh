#!/usr/bin/env bash
# An input written while the program loads it (after its fingerprint was
# taken) is caught on several ranks too: every rank checks its own view,
# they agree, and the job exits 2 naming the input, no rank left waiting
# and no output written. The load is made long with the test hook
# EMBER_TEST_LOAD_DELAY (cli.h).
source "$(dirname "$0")/mpi_lib.bash"
work=$(mktemp -d)
trap '[ -n "${job_pid:-}" ] && kill_job; rm -rf "$work"' EXIT
cd "$work"

cp "$src/data/karate.el" g.el
OMP_NUM_THREADS=1 EMBER_TEST_LOAD_DELAY=3 setsid mpirun --oversubscribe --bind-to none \
    --timeout 120 -x OMP_NUM_THREADS -x OMP_WAIT_POLICY -x EMBER_TEST_LOAD_DELAY -n 2 \
    "$bin/ember-pagerank" --input g.el --iterations 5 --output r.csv --quiet > out 2> err &
job_pid=$!
sleep 1
# the same bytes, written again in place: only the time stamps move
cat "$src/data/karate.el" > g.el
rc=0
wait "$job_pid" || rc=$?
job_pid=
[ "$rc" = 2 ] || fail "exit $rc, expected 2: $(cat err)"
grep -q -- "--input g.el: replaced or written since this run took its fingerprint" err \
    || fail "no message naming the input: $(cat err)"
[ ! -f r.csv ] || fail "a refused run wrote its output"

# Left alone, the same job runs.
mpi 2 1 "$bin/ember-pagerank" --input g.el --iterations 5 --output r.csv --quiet \
    || fail "the job with its input left alone failed"
[ -s r.csv ] || fail "no output"
echo ok
