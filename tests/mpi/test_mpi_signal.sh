#!/usr/bin/env bash
# `kill -USR1 <mpirun pid>` (Open MPI forwards it to every rank): every rank
# agrees to stop after the same iteration, one checkpoint is written, the
# job exits 75, and a resume on another rank count finishes with the
# serial build's bits. Also refused under more than one rank, exit 2 with
# a message: --checkpoint-async, and streaming. --version and --help are
# printed once.
source "$(dirname "$0")/mpi_lib.bash"
work=$(mktemp -d)
trap '[ -n "${job_pid:-}" ] && kill_job; rm -rf "$work"' EXIT
cd "$work"

"$sbin/ember-gen" kron --scale 13 --edge-factor 16 --seed 3 --output g.h5 --quiet
# A run of 10^6 iterations, which only the signal ends (so it lands
# mid-run on any machine); the resume then finishes a few iterations past the stop
# (--iterations is not part of a run's identity), and the serial build
# runs that many for the reference.
iters=${EMBER_MPI_SIGNAL_ITERATIONS:-1000000}
base=(--input g.h5 --tolerance 0 --partitions 6 --quiet)
args=("${base[@]}" --iterations "$iters")

mpi_bg 2 1 "$bin/ember-pagerank" "${args[@]}" --threads 1 --output part.csv \
    --checkpoint-dir ck --checkpoint-seconds 3600 --metrics part.jsonl
while kill -0 "$job_pid" 2>/dev/null && [ "$(last_iteration part.jsonl)" -lt 20 ]; do
    sleep 0.02
done
kill -0 "$job_pid" 2>/dev/null || fail "the run ended before the signal: raise EMBER_MPI_SIGNAL_ITERATIONS"
kill -USR1 "$job_pid"
rc=0
wait "$job_pid" || rc=$?
job_pid=
[ "$rc" = 75 ] || fail "USR1: exit $rc, expected 75"
stopped=$(last_iteration part.jsonl)
[ "$stopped" -lt "$iters" ] || fail "USR1 did not stop the run"
[ -f "ck/ckpt-$(printf %012d "$stopped").h5" ] \
    || fail "no checkpoint of iteration $stopped after USR1: $(ls ck)"
[ -f part.csv ] && fail "an interrupted run wrote its output"

end=$(( stopped + 15 ))
mpi 3 2 "$bin/ember-pagerank" "${base[@]}" --iterations "$end" --threads 2 --output part.csv \
    --checkpoint-dir ck --resume require --metrics part.jsonl || fail "resume on 3 ranks"
grep -q "^{\"iteration\": $(( stopped + 1 ))," part.jsonl || fail "the resume did not continue at $stopped"
"$sbin/ember-pagerank" "${base[@]}" --iterations "$end" --threads 2 --output full.csv
same full.csv part.csv

# Refusals under 2 ranks: exit 2 and a message naming the reason.
out=$(mpi 2 1 "$bin/ember-pagerank" "${args[@]}" --threads 1 --output a.csv \
    --checkpoint-dir cka --checkpoint-async 2>&1) && fail "--checkpoint-async accepted on 2 ranks"
echo "$out" | grep -q -- "--checkpoint-async.*MPI\|MPI.*--checkpoint-async" \
    || fail "no message for --checkpoint-async: $out"
[ ! -f a.csv ] || fail "a refused run wrote output"
# --version and --help: printed once, by rank 0.
out=$(mpi 3 1 "$bin/ember-pagerank" --version) || fail "--version on 3 ranks"
[ "$out" = "$("$bin/ember-pagerank" --version)" ] || fail "--version on 3 ranks: $out"
echo "$out" | grep -q "MPI build" || fail "--version names no MPI build: $out"
[ "$(mpi 2 1 "$bin/ember-pagerank" --help | grep -c '^usage:')" = 1 ] \
    || fail "--help on 2 ranks is not printed once"
if [ -x "$bin/ember-stream-wordcount" ]; then
    mkdir in
    out=$(mpi 2 1 "$bin/ember-stream-wordcount" --source in --checkpoint-location wc.ckpt \
        --trigger once 2>&1) && fail "streaming accepted on 2 ranks"
    echo "$out" | grep -qi "single-process\|one process\|MPI" \
        || fail "no message for streaming under MPI: $out"
fi
echo ok
