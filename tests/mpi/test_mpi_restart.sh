#!/usr/bin/env bash
# A run written on N ranks restarts on M ranks with the same bits: PageRank
# and CC stopped after some iterations on 2 ranks resume on 3; stopped on 3,
# resume on 1 (mpirun -n 1) and on the serial build. Each final output is
# cmp-identical to one uninterrupted serial run. --iterations is not part
# of the run's identity, so a run with more iterations resumes one that
# finished fewer.
source "$(dirname "$0")/mpi_lib.bash"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

"$sbin/ember-gen" kron --scale 12 --edge-factor 16 --seed 3 --output g.h5 --quiet
pr=(--input g.h5 --tolerance 0 --partitions 7 --quiet)
"$sbin/ember-pagerank" "${pr[@]}" --iterations 60 --threads 2 --output full.csv

resumed_from() { # resumed_from METRICS: iterations done when it resumed
    grep -q '"iteration": 1,' "$1" && { echo 0; return; }
    sed -n '/^{"iteration": /{s/^{"iteration": \([0-9]*\),.*/\1/p;q}' "$1"
}

# 2 ranks -> 3 ranks -> 1 rank -> serial build.
ck=(--checkpoint-dir ck --checkpoint-every 10 --keep 3)
mpi 2 1 "$bin/ember-pagerank" "${pr[@]}" "${ck[@]}" --iterations 20 --threads 1 \
    --output p.csv || fail "2 ranks, 20 iterations"
[ -f ck/ckpt-000000000020.h5 ] || fail "2 ranks wrote no ckpt-20: $(ls ck)"
mpi 3 2 "$bin/ember-pagerank" "${pr[@]}" "${ck[@]}" --iterations 35 --threads 2 \
    --resume require --metrics m3.jsonl --output p.csv || fail "3 ranks, resume"
[ "$(resumed_from m3.jsonl)" = 21 ] || fail "3 ranks did not resume at 20: $(head -1 m3.jsonl)"
mpi 1 1 "$bin/ember-pagerank" "${pr[@]}" "${ck[@]}" --iterations 50 --threads 1 \
    --resume require --metrics m1.jsonl --output p.csv || fail "1 rank, resume"
[ "$(resumed_from m1.jsonl)" = 36 ] || fail "1 rank did not resume at 35: $(head -1 m1.jsonl)"
"$sbin/ember-pagerank" "${pr[@]}" "${ck[@]}" --iterations 60 --threads 2 \
    --resume require --output p.csv || fail "serial build, resume"
same full.csv p.csv

# The serial build's checkpoint restarts on 4 ranks, and on 3 again.
rm -rf ck
"$sbin/ember-pagerank" "${pr[@]}" "${ck[@]}" --iterations 30 --threads 1 --output q.csv
mpi 4 1 "$bin/ember-pagerank" "${pr[@]}" "${ck[@]}" --iterations 45 --threads 1 \
    --resume require --output q.csv || fail "4 ranks, resume of a serial run"
mpi 3 1 "$bin/ember-pagerank" "${pr[@]}" "${ck[@]}" --iterations 60 --threads 1 \
    --resume require --output q.csv || fail "3 ranks, resume"
same full.csv q.csv

# CC: 3 ranks for 2 iterations, then 1 rank to the end.
"$sbin/ember-gen" kron --scale 12 --edge-factor 4 --seed 9 --output k.h5 --quiet
"$sbin/ember-cc" --input k.h5 --partitions 6 --quiet --threads 2 --output cc.full.csv
mpi 3 1 "$bin/ember-cc" --input k.h5 --partitions 6 --quiet --threads 1 --iterations 2 \
    --checkpoint-dir ckc --checkpoint-every 1 --output cc.csv || fail "cc on 3 ranks"
ls ckc/ckpt-*.h5 >/dev/null || fail "cc on 3 ranks wrote no checkpoint"
mpi 1 2 "$bin/ember-cc" --input k.h5 --partitions 6 --quiet --threads 2 \
    --checkpoint-dir ckc --resume require --output cc.csv || fail "cc resume on 1 rank"
same cc.full.csv cc.csv

# A format 1 checkpoint (ember before format 2) resumes on 2 ranks too, to
# the serial resume's result: every rank reads it by its format 1 names.
# (--force-resume: its release summed the rows in another order, which the
# parameters now name; test_h5_self_describing checks the refusal.)
fix=$src/tests/integration/data/ckpt_v1_pagerank_karate_12.h5
v1=(--input "$src/data/karate.el" --undirected --quiet --resume require --force-resume)
mkdir v1s v1m
cp "$fix" v1s/ckpt-000000000012.h5
cp "$fix" v1m/ckpt-000000000012.h5
"$sbin/ember-pagerank" "${v1[@]}" --checkpoint-dir v1s --output v1.serial.csv \
    || fail "serial resume from format 1"
mpi 2 1 "$bin/ember-pagerank" "${v1[@]}" --threads 1 --checkpoint-dir v1m \
    --output v1.2.csv || fail "2 ranks did not resume from a format 1 checkpoint"
same v1.serial.csv v1.2.csv

# A checkpoint directory that is not shared: each rank sees its own (here,
# each its own working directory), and rank 1's file under rank 0's chosen
# name is another run's (another damping). The loop's start-up probe
# refuses it on every rank, exit 2, instead of mixing two runs' states (the
# same-run check on every rank's restore stays behind it).
kar=(--input "$src/data/karate.el" --undirected --quiet --tolerance 0
     --checkpoint-dir ck --checkpoint-every 10)
mkdir -p own0 own1
(cd own0 && "$sbin/ember-pagerank" "${kar[@]}" --iterations 20 --output o.csv) || fail "own0"
(cd own1 && "$sbin/ember-pagerank" "${kar[@]}" --iterations 20 --damping 0.9 \
    --output o.csv) || fail "own1"
set +e
OMP_NUM_THREADS=1 mpirun --oversubscribe --bind-to none --timeout 120 -x OMP_NUM_THREADS \
    -x OMP_WAIT_POLICY -n 1 -wdir "$PWD/own0" "$bin/ember-pagerank" "${kar[@]}" \
    --iterations 30 --threads 1 --output m.csv : \
    -n 1 -wdir "$PWD/own1" "$bin/ember-pagerank" "${kar[@]}" \
    --iterations 30 --threads 1 --output m.csv > split.out 2> split.err
st=$?
set -e
[ "$st" -eq 2 ] || fail "ranks with different checkpoint files: exit $st, wanted 2: $(cat split.err)"
grep -q "not shared by the ranks" split.err || fail "the refusal does not say why: $(cat split.err)"
[ ! -e own0/m.csv ] || fail "an output was written from mixed states"
# Ranks given checkpoint directories of different names: the refusal
# names each rank's (it used to name rank 1's as the one rank 0 created).
set +e
OMP_NUM_THREADS=1 mpirun --oversubscribe --bind-to none --timeout 120 -x OMP_NUM_THREADS \
    -n 1 "$bin/ember-pagerank" --input "$src/data/karate.el" --undirected --quiet \
    --checkpoint-dir ckA --iterations 5 --threads 1 : \
    -n 1 "$bin/ember-pagerank" --input "$src/data/karate.el" --undirected --quiet \
    --checkpoint-dir ckB --iterations 5 --threads 1 > two.out 2> two.err
st=$?
set -e
[ "$st" -eq 2 ] || fail "ranks with different checkpoint dirs: exit $st: $(cat two.err)"
grep -q "checkpoint dir ckB of rank 1 is not rank 0's, ckA: rank 1 cannot open ckB/ember-shared.tmp, which rank 0 created as ckA/ember-shared.tmp" \
    two.err || fail "the refusal does not name both dirs: $(cat two.err)"
echo ok
