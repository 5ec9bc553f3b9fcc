#!/usr/bin/env bash
# The README's SLURM script, as shown, with the program pointed at the
# bundled graph and `scontrol` a stub that records the requeue. A USR1 to
# the batch shell while the program loads reaches the program through the
# script's trap: the program exits 75, and the script requeues the job and
# exits 75. The requeued script then runs to the end, exit 0, and its ranks
# are those of a run never stopped.
set -euo pipefail
bin=${EMBER_BIN:?}
src=${EMBER_SRC:?}
work=$(mktemp -d)
job=
trap '[ -n "$job" ] && kill -9 "$job" 2> /dev/null; rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

awk '/^### In a batch job \(SLURM\)/ { s = 1 } s && /^```sh$/ { on = 1; next }
     on && /^```$/ { exit } on { print }' "$src/README.md" > job.sh
grep -q 'scontrol requeue' job.sh || fail "no batch script in the README: $(cat job.sh)"
grep -q -- '--input web.el' job.sh || fail "the README's script changed: $(cat job.sh)"
sed -i "s#--input web.el#--input $src/data/karate.el --undirected#" job.sh
mkdir stub
printf '#!/bin/sh\necho "$@" >> "%s/requeued"\n' "$work" > stub/scontrol
chmod +x stub/scontrol
export PATH="$work/stub:$bin:$PATH" SLURM_CPUS_PER_TASK=2 SLURM_JOB_ID=42 SCRATCH=$work

"$bin/ember-pagerank" --input "$src/data/karate.el" --undirected --output want.h5 \
    --quiet > /dev/null

EMBER_TEST_LOAD_DELAY=60 EMBER_TEST_LOAD_READY="$work/ready" bash job.sh \
    > out1.txt 2> err1.txt &
job=$!
for _ in $(seq 1200); do
    compgen -G "ready.*" > /dev/null && break
    sleep 0.05
done
compgen -G "ready.*" > /dev/null || fail "the program never started: $(cat err1.txt)"
kill -USR1 "$job"
st=0
wait "$job" || st=$?
job=
[ "$st" -eq 75 ] || fail "the signalled job: exit $st, wanted 75: $(cat err1.txt)"
grep -qx 'requeue 42' requeued || fail "the job was not requeued"
grep -q "stopped by a signal" err1.txt || fail "no interruption line: $(cat err1.txt)"

st=0
bash job.sh > out2.txt 2> err2.txt || st=$?
[ "$st" -eq 0 ] || fail "the requeued job: exit $st: $(cat err2.txt)"
[ "$(wc -l < requeued)" -eq 1 ] || fail "requeued again after finishing"
h5diff want.h5 ranks.h5 /ranks /ranks > diff.txt || fail "other ranks: $(head diff.txt)"
echo "README SLURM script: signalled, requeued, finished with the same ranks"
