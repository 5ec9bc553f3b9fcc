#!/usr/bin/env bash
# Inputs on several ranks: each rank checks its own view of them, and the
# ranks agree, so all stop together with exit 2 and none is left waiting.
# The two ranks are started in directories of their own (mpirun's app
# contexts, --wdir), so that each reads its own copy of the input and one
# rank alone can see something the other does not:
#   - rank 1's input is missing: both exit 2, rank 0 saying another rank
#     stopped;
#   - rank 1's copy is written again while the program loads (after the
#     fingerprint was taken): both exit 2, both naming the input, and no
#     output is written. The load is held open with the test hooks
#     EMBER_TEST_LOAD_DELAY and EMBER_TEST_LOAD_READY (cli.h).
source "$(dirname "$0")/mpi_lib.bash"
work=$(mktemp -d)
trap '[ -n "${job_pid:-}" ] && kill_job; rm -rf "$work"' EXIT
cd "$work"
mkdir a b none
cp "$src/data/karate.el" a/g.el
cp "$src/data/karate.el" b/g.el
export OMP_NUM_THREADS=1
args=(--input g.el --iterations 5 --output r.csv --quiet)
# cmd: the job of two ranks, rank 0 in a and rank 1 in $1; more mpirun
# options after it
two() {
    local dir1=$1
    shift
    cmd=(mpirun --oversubscribe --bind-to none --timeout 120 -x OMP_NUM_THREADS
         -x OMP_WAIT_POLICY "$@"
         -n 1 --wdir "$work/a" "$bin/ember-pagerank" "${args[@]}"
         : -n 1 --wdir "$work/$dir1" "$bin/ember-pagerank" "${args[@]}")
}

rc=0
two none
"${cmd[@]}" > out 2> err || rc=$?
[ "$rc" = 2 ] || fail "rank 1's input missing: exit $rc, expected 2: $(cat err)"
grep -q -- "--input g.el: no such file" err || fail "no message from rank 1: $(cat err)"
grep -q "another rank stopped on its inputs" err || fail "no message from rank 0: $(cat err)"
[ ! -f a/r.csv ] || fail "a refused run wrote its output"

two b -x EMBER_TEST_LOAD_DELAY -x EMBER_TEST_LOAD_READY
EMBER_TEST_LOAD_DELAY=60 EMBER_TEST_LOAD_READY="$work/ready" setsid "${cmd[@]}" > out 2> err &
job_pid=$!
for _ in $(seq 3000); do
    [ "$(ls "$work" | grep -c '^ready\.[0-9]')" -ge 2 ] && break
    kill -0 "$job_pid" 2>/dev/null || break
    sleep 0.02
done
[ "$(ls "$work" | grep -c '^ready\.[0-9]')" -ge 2 ] || fail "the ranks never reached the load: $(cat err)"
cat "$src/data/karate.el" > b/g.el # rank 1's copy only: the same bytes, new time stamps
touch "$work/ready.go"
rc=0
wait "$job_pid" || rc=$?
job_pid=
[ "$rc" = 2 ] || fail "rank 1's input written during the load: exit $rc, expected 2: $(cat err)"
n=$(grep -c -- "--input g.el: replaced or written since this run took its fingerprint" err || true)
[ "$n" = 2 ] || fail "expected the message from both ranks, got $n: $(cat err)"
[ ! -f a/r.csv ] || fail "a refused run wrote its output"

# Rank 1's copy holds other bytes of the same size (a stale node-local
# copy): both ranks exit 2 before the load, rank 0 naming rank 1 and the
# input. It used to run, each rank on its own graph, and exit 0 with a mix.
sed 's/^2 3$/2 2/' "$src/data/karate.el" > b/g.el
cmp -s a/g.el b/g.el && fail "the test's copy did not change"
rc=0
two b
"${cmd[@]}" > out 2> err || rc=$?
[ "$rc" = 2 ] || fail "rank 1's copy differs: exit $rc, expected 2: $(cat err)"
grep -q -- "--input g.el: rank 1 reads other bytes than rank 0" err || fail "no message naming rank 1: $(cat err)"
[ ! -f a/r.csv ] || fail "a refused run wrote its output"
cp "$src/data/karate.el" b/g.el

# Ranks given other options (an MPMD launch): exit 2, not a hang (other
# --iterations) or a result of neither command (other --damping).
for other in "--iterations 9" "--damping 0.5"; do
    rc=0
    mpirun --oversubscribe --bind-to none --timeout 120 -x OMP_NUM_THREADS \
        -n 1 --wdir "$work/a" "$bin/ember-pagerank" "${args[@]}" \
        : -n 1 --wdir "$work/b" "$bin/ember-pagerank" "${args[@]}" $other > out 2> err || rc=$?
    [ "$rc" = 2 ] || fail "rank 1 with $other: exit $rc, expected 2: $(cat err)"
    grep -q "rank 1 was started with other options than rank 0" err || fail "no message ($other): $(cat err)"
    [ ! -f a/r.csv ] || fail "a refused run wrote its output"
done

# Left alone, the same job runs: copies at other paths with the same bytes
# (each rank reads its own directory's) are the same input.
two b
"${cmd[@]}" > out 2> err || fail "the job with its inputs left alone failed: $(cat err)"
[ -s a/r.csv ] || fail "no output"
echo ok
