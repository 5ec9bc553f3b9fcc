#!/usr/bin/env bash
# The whole mpirun job (mpirun and every rank, SIGKILL at once) killed at
# random moments, each time restarted on another rank count (1..4) and
# thread count, ends with PageRank ranks cmp-identical to one uninterrupted
# serial run. Kills land after a random number of further iterations (read
# from the metrics file rank 0 appends to) plus a random delay, so they hit
# iterations, collectives and checkpoint writes alike; the number of
# iterations (10^6) is far more than any run here reaches: every run ends
# by a kill, so no machine is fast enough to finish one first. RANDOM is seeded (EMBER_TEST_SEED) so a
# failure can be replayed.
source "$(dirname "$0")/mpi_lib.bash"
work=$(mktemp -d)
trap '[ -n "${job_pid:-}" ] && kill_job; rm -rf "$work"' EXIT
cd "$work"

"$sbin/ember-gen" kron --scale 13 --edge-factor 16 --seed 3 --output g.h5 --quiet
iters=${EMBER_MPI_KILL_ITERATIONS:-1000000}
base=(--input g.h5 --tolerance 0 --partitions 6 --quiet)
args=("${base[@]}" --iterations "$iters")

RANDOM=${EMBER_TEST_SEED:-4343}
kills=0
finished=0
prev=0
while [ "$kills" -lt 4 ]; do
    n=$prev                          # another rank count each time
    while [ "$n" = "$prev" ]; do n=$(( RANDOM % 4 + 1 )); done
    prev=$n
    t=$(( RANDOM % 2 + 1 ))
    before=$(last_iteration part.jsonl)
    target=$(( before + RANDOM % 120 + 5 ))
    mpi_bg "$n" "$t" "$bin/ember-pagerank" "${args[@]}" --threads "$t" \
        --output part.csv --checkpoint-dir ck --checkpoint-every 10 --keep 3 \
        --metrics part.jsonl
    while kill -0 "$job_pid" 2>/dev/null; do
        [ "$(last_iteration part.jsonl)" -ge "$target" ] && break
        sleep 0.02
    done
    if ! kill -0 "$job_pid" 2>/dev/null; then
        wait "$job_pid" || fail "run on $n ranks failed before its kill"
        job_pid=
        finished=1
        break
    fi
    sleep "0.0$(( RANDOM % 10 ))"
    kill_job
    job_pid=
    kills=$(( kills + 1 ))
    echo "killed a $n-rank x $t-thread job after iteration $(last_iteration part.jsonl)"
done
[ "$finished" = 0 ] || fail "the run finished after $kills kills: raise EMBER_MPI_KILL_ITERATIONS"

# No stray .tmp may survive a restart (rank 0 sweeps under the lock), and
# the final restart, on 3 ranks, finishes the work a few iterations past
# the last one seen (--iterations is not part of a run's identity; no
# checkpoint can be past it), against a serial run of as many.
end=$(( $(last_iteration part.jsonl) + 25 ))
mpi 3 1 "$bin/ember-pagerank" "${base[@]}" --iterations "$end" --threads 1 \
    --output part.csv --checkpoint-dir ck --checkpoint-every 10 --keep 3 \
    --metrics part.jsonl || fail "the final restart failed"
ls ck | grep -q '\.tmp$' && fail "a .tmp survived: $(ls ck)"
"$sbin/ember-pagerank" "${base[@]}" --iterations "$end" --threads 2 --output full.csv
same full.csv part.csv
echo "ok ($kills kills)"
