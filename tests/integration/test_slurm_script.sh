#!/usr/bin/env bash
# docs/slurm/ember-pagerank.sbatch as a first submission would run it, with
# stand-ins for srun (runs the program, dropping srun's own options), squeue
# (a job with 5 minutes left) and scontrol (records the requeue): nothing
# exists under SCRATCH yet (the script exited 2 there: nothing made the
# directories of --output and --metrics). Then a job stopped by SIGUSR1 (as
# SLURM's --signal would) is requeued, and its rerun resumes and finishes
# with the ranks of an uninterrupted run.
set -uo pipefail
bin=${EMBER_BIN:?}
src=${EMBER_SRC:?}
work=$(mktemp -d)
prog=
trap '[ -n "$prog" ] && kill -9 "$prog" 2> /dev/null; rm -rf "$work"' EXIT
cd "$work"
fail() { echo "test_slurm_script: FAIL: $*" >&2; exit 1; }

mkdir fake
cat > fake/srun <<SH
#!/usr/bin/env bash
while [ "\${1#--}" != "\$1" ]; do shift; done
echo \$\$ > "$work/prog.pid" # the program's, once exec'd
exec "\$@"
SH
printf '#!/bin/sh\necho 5:00\n' > fake/squeue
printf '#!/bin/sh\necho "$*" >> "%s/requeued"\n' "$work" > fake/scontrol
chmod +x fake/*
job() {
    PATH=$work/fake:$PATH SLURM_JOB_ID=42 SLURM_CPUS_PER_TASK=1 EMBER=$bin \
        INPUT=$src/data/karate.el SCRATCH=$work/scratch ITERATIONS=$1 TOLERANCE=0 \
        bash "$src/docs/slurm/ember-pagerank.sbatch" > job.out 2> job.err
}
job 30 || fail "first submission: exit $?: $(cat job.err)"
out=scratch/ember-out/pagerank-kron26.csv
[ -s "$out" ] || fail "no output: $(cat job.err)"
[ -s scratch/ember-ck/pagerank-kron26.metrics.jsonl ] || fail "no metrics"
"$bin/ember-pagerank" --input "$src/data/karate.el" --iterations 30 --tolerance 0 \
    --output ref.csv --quiet > /dev/null || fail "reference run"
cmp -s ref.csv "$out" || fail "the job's ranks differ from a plain run's"

# a long job stopped by SIGUSR1 (sent to the program, as SLURM signals the
# job step): checkpointed, requeued, then resumed to the end
rm -rf scratch requeued
rm -f prog.pid
job 100000000 &
pid=$!
# the program is running iterations once it writes metrics (its signal
# handlers are in place long before)
for _ in $(seq 400); do
    [ -s prog.pid ] && [ -s scratch/ember-ck/pagerank-kron26.metrics.jsonl ] && break
    sleep 0.05
done
prog=$(cat prog.pid 2> /dev/null)
[ -s scratch/ember-ck/pagerank-kron26.metrics.jsonl ] ||
    fail "the job's program did not start: $(cat job.err)"
sleep 0.3
kill -USR1 "$prog"
wait "$pid" || fail "the signalled job: exit $?: $(cat job.err)"
prog=
grep -q "requeue 42" requeued || fail "not requeued: $(cat job.out job.err)"
ck=$(ls scratch/ember-ck/pagerank-kron26/ckpt-*.h5 | tail -n 1)
k=$(basename "$ck" .h5 | sed 's/ckpt-0*//')
[ -n "$k" ] || fail "no checkpoint at the signal: $(cat job.err)"
job $((k + 500)) || fail "the requeued job: exit $?: $(cat job.err)"
grep -q "resumed from" job.err || fail "the requeued job did not resume: $(cat job.err)"
"$bin/ember-pagerank" --input "$src/data/karate.el" --iterations $((k + 500)) --tolerance 0 \
    --output ref.csv --quiet > /dev/null || fail "reference run"
cmp -s ref.csv "$out" || fail "the resumed job's ranks differ from an uninterrupted run's"
echo "test_slurm_script: PASS (stopped at $k, requeued, resumed)"
