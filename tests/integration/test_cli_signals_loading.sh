#!/usr/bin/env bash
# Signals from the first instant (issue 9): SIGUSR1, SIGTERM or SIGINT that
# arrives while the input is loading ends the program with exit 75 (it used
# to die of the signal: exit 138 or 143, and no requeue), with or without a
# checkpoint directory; so does a --deadline reached while loading. The
# load is made long with the test hook EMBER_TEST_LOAD_DELAY (cli.h): a
# sleep inside the loading phase, after the inputs are read and hashed;
# with EMBER_TEST_LOAD_READY the program says when it is in it (ready.PID),
# and the signal is sent then, not after a fixed pause: on a loaded machine
# a program may not even have reached main (and its handlers) in 0.5 s.
# The stream program catches them before its stream starts, too.
set -uo pipefail
bin=${EMBER_BIN:?}
src=${EMBER_SRC:?}
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
fail() { echo "test_cli_signals_loading: FAIL: $*" >&2; exit 1; }

# A long "load": the signal must not have to wait for it (a hang would end
# in ctest's timeout, a death by the signal in the wrong status). Job
# control is on so that background jobs do not start with SIGINT ignored
# (without it bash ignores SIGINT in them, and so does ember, on purpose).
set -m
# loading PID: waits (up to 60 s) until PID is in its loading phase.
loading() {
    for _ in $(seq 1200); do
        [ -e "ready.$1" ] && return 0
        kill -0 "$1" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
for sig in USR1 TERM INT; do
    for ck in "--checkpoint-dir ck-$sig" ""; do
        # shellcheck disable=SC2086
        EMBER_TEST_LOAD_DELAY=120 EMBER_TEST_LOAD_READY="$work/ready" \
            "$bin/ember-pagerank" --input "$src/data/karate.el" \
            --undirected --top 3 $ck 2> err.txt &
        pid=$!
        loading "$pid" || fail "SIG$sig (${ck:-no dir}): the program never reached its load: $(cat err.txt)"
        kill -s "$sig" "$pid"
        wait "$pid"
        st=$?
        pid=
        [ "$st" -eq 75 ] || fail "SIG$sig while loading (${ck:-no dir}): exit $st, wanted 75: $(cat err.txt)"
        grep -q "stopped by a signal" err.txt || fail "SIG$sig: no message: $(cat err.txt)"
        [ "$(wc -l < err.txt)" -eq 1 ] || fail "SIG$sig: more than one line: $(cat err.txt)"
    done
done
# term_when COND...: once COND holds (up to 30 s: a loaded machine may take
# a while to start the program), SIGTERM to $pid; st is its exit status.
term_when() {
    for _ in $(seq 600); do
        "$@" && break
        sleep 0.05
    done
    kill -s TERM "$pid"
    wait "$pid"
    st=$?
    pid=
}

# A signal after the program has settled its outcome (here a usage error;
# under mpirun the slower ranks get SIGTERM once one rank has exited) ends
# it with that status and says nothing more: it used to say "stopped by a
# signal ... (exit 75)" beside the real error and exit 75.
EMBER_TEST_SETTLE_DELAY=120 "$bin/ember-pagerank" --input "$src/data/karate.el" --keep 0 \
    2> settled.txt &
pid=$!
term_when test -s settled.txt # the line is written once the status is settled
[ "$st" -eq 2 ] || fail "SIGTERM after a usage error: exit $st, wanted 2: $(cat settled.txt)"
[ "$(cat settled.txt)" = "ember-pagerank: --keep: 0 is out of range: it must be in [1, 1000000]" ] \
    || fail "SIGTERM after a usage error: $(cat settled.txt)"

# A signal after a successful run has settled (result out, final
# checkpoint committed, before the teardown) exits 0 and says nothing: it
# exited 75, and a batch script requeued a finished job.
EMBER_TEST_SETTLE_DELAY=120 "$bin/ember-pagerank" --input "$src/data/karate.el" --top 3 \
    --checkpoint-dir ck-done --quiet > done.txt 2> settled.txt &
pid=$!
term_when grep -q '^3 ' done.txt
[ "$st" -eq 0 ] || fail "SIGTERM after a finished run: exit $st, wanted 0: $(cat settled.txt)"
[ ! -s settled.txt ] || fail "SIGTERM after a finished run: $(cat settled.txt)"

grep -q "nothing is saved without --checkpoint-dir" err.txt \
    || fail "without a directory the message should say nothing is saved: $(cat err.txt)"

# kmeans and cc the same way (one signal each).
EMBER_TEST_LOAD_DELAY=120 EMBER_TEST_LOAD_READY="$work/ready" "$bin/ember-kmeans" \
    --input "$src/data/iris.csv" --k 3 --checkpoint-dir ck-km 2> err.txt > /dev/null &
pid=$!
loading "$pid" || fail "kmeans: never reached its load: $(cat err.txt)"
kill -USR1 "$pid"; wait "$pid"; st=$?; pid=
[ "$st" -eq 75 ] || fail "kmeans: SIGUSR1 while loading: exit $st: $(cat err.txt)"
EMBER_TEST_LOAD_DELAY=120 EMBER_TEST_LOAD_READY="$work/ready" "$bin/ember-cc" \
    --input "$src/data/karate.el" --output cc.csv 2> err.txt &
pid=$!
loading "$pid" || fail "cc: never reached its load: $(cat err.txt)"
kill -TERM "$pid"; wait "$pid"; st=$?; pid=
[ "$st" -eq 75 ] || fail "cc: SIGTERM while loading: exit $st: $(cat err.txt)"

# The deadline, counted from the start, reached while loading: exit 75 at
# the deadline, no iteration run, no checkpoint (there is nothing to save).
EMBER_TEST_LOAD_DELAY=120 "$bin/ember-pagerank" --input "$src/data/karate.el" \
    --undirected --top 3 --checkpoint-dir ck-dl --deadline 1s 2> err.txt
st=$?
[ "$st" -eq 75 ] || fail "--deadline 1s during a long load: exit $st, wanted 75: $(cat err.txt)"
grep -q "deadline reached before the first iteration" err.txt || fail "deadline message: $(cat err.txt)"
! ls ck-dl/ckpt-*.h5 > /dev/null 2>&1 || fail "a checkpoint appeared without any iteration"

# A load shorter than the deadline, then a run past it: the loop's deadline
# (also from the start) checkpoints and exits 75; the same command resumes.
"$bin/ember-gen" kron --scale 12 --edge-factor 16 --seed 3 --output g.h5 --quiet
args=(--input g.h5 --iterations 1000000 --tolerance 0 --quiet --output r.csv
      --checkpoint-dir ck-run --checkpoint-every 1000000)
EMBER_TEST_LOAD_DELAY=0.5 "$bin/ember-pagerank" "${args[@]}" --deadline 2s 2> err.txt
st=$?
[ "$st" -eq 75 ] || fail "--deadline 2s after a load of 0.5 s: exit $st: $(cat err.txt)"
ls ck-run/ckpt-*.h5 > /dev/null || fail "no checkpoint at the deadline"

# The stream program: a signal before its stream starts.
mkdir -p in
"$bin/ember-stream-wordcount" --source in --checkpoint-location wc.ckpt \
    --trigger processing-time=1s --quiet 2> err.txt &
pid=$!
# past main's first line (the early handlers): its checkpoint location is
# made after them (waited for: a fixed pause may end before main on a
# loaded machine)
for _ in $(seq 1200); do [ -e wc.ckpt ] && break; sleep 0.05; done
[ -e wc.ckpt ] || fail "wordcount: no checkpoint location after 60 s: $(cat err.txt)"
kill -USR1 "$pid"; wait "$pid"; st=$?; pid=
[ "$st" -eq 75 ] || fail "wordcount: SIGUSR1: exit $st, wanted 75: $(cat err.txt)"
echo "signals while loading: ok"
