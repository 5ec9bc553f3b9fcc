#!/usr/bin/env bash
# A second job on the checkpoint directory of a live one is refused (exit 1,
# as in the serial build: the directory is busy, not bad input;
# a message naming the lock), whatever its rank count, and leaves the first
# job's checkpoints alone; the first job, stopped by USR1 and resumed,
# then finishes with the serial build's bits. Only rank 0 takes the lock: a job of 3 ranks on a fresh
# directory is not refused by its own ranks.
source "$(dirname "$0")/mpi_lib.bash"
work=$(mktemp -d)
trap '[ -n "${job_pid:-}" ] && kill_job; rm -rf "$work"' EXIT
cd "$work"

"$sbin/ember-gen" kron --scale 13 --edge-factor 16 --seed 3 --output g.h5 --quiet
# 10^6 iterations: only the USR1 below ends the first job, on any machine.
iters=${EMBER_MPI_LOCK_ITERATIONS:-1000000}
base=(--input g.h5 --tolerance 0 --partitions 6 --quiet)
args=("${base[@]}" --iterations "$iters")

mpi_bg 3 1 "$bin/ember-pagerank" "${args[@]}" --threads 1 --output first.csv \
    --checkpoint-dir ck --checkpoint-every 50 --metrics first.jsonl
while kill -0 "$job_pid" 2>/dev/null && [ "$(last_iteration first.jsonl)" -lt 10 ]; do
    sleep 0.02
done
kill -0 "$job_pid" 2>/dev/null || fail "the first job ended too soon: raise EMBER_MPI_LOCK_ITERATIONS"
for n in 2 1; do
    rc=0
    out=$(mpi "$n" 1 "$bin/ember-pagerank" "${args[@]}" --threads 1 --output second.csv \
        --checkpoint-dir ck 2>&1) || rc=$?
    kill -0 "$job_pid" 2>/dev/null || fail "the first job ended before the second was refused"
    [ "$rc" = 1 ] || fail "second job on $n ranks: exit $rc, expected 1: $out"
    echo "$out" | grep -q "ember.lock\|in use\|locked" || fail "no lock message: $out"
done
[ ! -f second.csv ] || fail "a refused job wrote output"
# The serial build is refused too: the lock is the same file.
rc=0
"$sbin/ember-pagerank" "${args[@]}" --threads 1 --output second.csv --checkpoint-dir ck \
    >/dev/null 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "serial job on a live MPI job's directory: exit $rc, expected 1"
# The first job is still going; stop it (USR1, exit 75), then finish it on
# one rank a few iterations later and compare with the serial build.
kill -USR1 "$job_pid"
rc=0
wait "$job_pid" || rc=$?
job_pid=
[ "$rc" = 75 ] || fail "the first job: exit $rc after USR1, expected 75"
[ -z "$(ls ck | grep -v '^ckpt-.*\.h5$' | grep -v '^ember.lock$')" ] \
    || fail "the refused jobs left files: $(ls ck)"
end=$(( $(last_iteration first.jsonl) + 10 ))
mpi 1 1 "$bin/ember-pagerank" "${base[@]}" --iterations "$end" --threads 1 \
    --output first.csv --checkpoint-dir ck --resume require || fail "resume on 1 rank"
"$sbin/ember-pagerank" "${base[@]}" --iterations "$end" --threads 1 --output full.csv
same full.csv first.csv
echo ok
