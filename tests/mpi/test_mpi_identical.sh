#!/usr/bin/env bash
# Every distributed program's output, under mpirun with 1, 2, 3 and 4 ranks
# and 1 or 2 OpenMP threads each, is bit-identical (cmp) to the serial
# build's output on the same input. Also: more ranks than partitions (a
# rank with nothing to do), and a checkpointed run (the checkpoint files
# are byte-identical to the serial build's too).
source "$(dirname "$0")/mpi_lib.bash"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

"$sbin/ember-gen" kron --scale 12 --edge-factor 16 --seed 3 --output g.h5 --quiet
"$sbin/ember-gen" kron --scale 11 --edge-factor 4 --seed 9 --output sparse.h5 --quiet
"$sbin/ember-gen" kron --scale 10 --edge-factor 8 --weighted --seed 7 --output w.el --quiet
src_v=$(awk '!/^#/ { print $1; exit }' w.el)
# stored both ways: ember-cc and --undirected read its stored layout, each
# rank its own rows
"$sbin/ember-gen" kron --scale 11 --edge-factor 4 --seed 9 --output sparse.el --quiet
"$sbin/ember-convert" --input sparse.el --undirected --output und.h5 --quiet

# name | ranks:threads runs | program and flags (every run adds --quiet and
# an output). The runs cover 1-4 ranks and 1-2 threads between them while
# keeping the mpirun count (0.5-1.5 s each here) down.
cases=(
  "pr|1:1 2:2 3:1 4:1|ember-pagerank --input g.h5 --iterations 25 --tolerance 0 --partitions 8"
  "prel|3:2|ember-pagerank --input $src/data/karate.el --undirected --iterations 40 --partitions 5"
  "cc|2:1 4:2|ember-cc --input sparse.h5 --partitions 8"
  "ccu|3:1|ember-cc --input und.h5 --partitions 7"
  "pru|2:1|ember-pagerank --input und.h5 --undirected --iterations 20 --partitions 6"
  "km|2:2 3:1|ember-kmeans --input $src/data/iris.csv --k 3 --seed 7 --tolerance 0 --iterations 15 --partitions 6"
  "ss|3:2 2:1|ember-sssp --input w.el --source $src_v --partitions 8"
  "ssh|4:1|ember-sssp --input w.el --source $src_v --partitions 5 --plan shuffle"
)
ext() { case $1 in km) echo h5 ;; *) echo csv ;; esac; }

for c in "${cases[@]}"; do
    name=${c%%|*}
    rest=${c#*|}
    runs=${rest%%|*}
    read -r -a cmd <<<"${rest#*|}"
    e=$(ext "$name")
    "$sbin/${cmd[0]}" "${cmd[@]:1}" --threads 2 --quiet --output "$name.serial.$e" \
        || fail "$name: serial run"
    for nt in $runs; do
        n=${nt%:*} t=${nt#*:}
        mpi "$n" "$t" "$bin/${cmd[0]}" "${cmd[@]:1}" --threads "$t" --quiet \
            --output "$name.$n.$t.$e" || fail "$name: $n ranks x $t threads"
        same "$name.serial.$e" "$name.$n.$t.$e"
    done
done

# ember-sssp --plan push and delta, ember-cc --plan afforest run on one
# process: refused on 2 ranks, exit 2.
for p in push delta; do
    set +e
    mpi 2 1 "$bin/ember-sssp" --input w.el --source "$src_v" --plan $p --quiet \
        --output $p.csv > $p.out 2> $p.err
    st=$?
    set -e
    [ "$st" = 2 ] && grep -q "plan $p runs on one process" $p.err ||
        fail "--plan $p on 2 ranks: exit $st: $(cat $p.err)"
done
set +e
mpi 2 1 "$bin/ember-cc" --input w.el --plan afforest --quiet --output af.csv > af.out 2> af.err
st=$?
set -e
[ "$st" = 2 ] && grep -q "plan afforest runs on one process" af.err ||
    fail "ember-cc --plan afforest on 2 ranks: exit $st: $(cat af.err)"

# ember-maps prints its result; 3 ranks on 2 partitions: one rank owns none.
"$sbin/ember-maps" --n 300000 --maps 4 --partitions 2 --threads 1 --quiet > maps.serial
for n in 2 3; do
    mpi "$n" 1 "$bin/ember-maps" --n 300000 --maps 4 --partitions 2 --threads 1 \
        --quiet > "maps.$n" || fail "maps on $n ranks"
    same maps.serial "maps.$n"
done

# More ranks than partitions for a graph: 4 ranks, 3 partitions.
"$sbin/ember-pagerank" --input g.h5 --iterations 10 --tolerance 0 --partitions 3 \
    --quiet --output few.serial.csv
mpi 4 1 "$bin/ember-pagerank" --input g.h5 --iterations 10 --tolerance 0 \
    --partitions 3 --threads 1 --quiet --output few.4.csv || fail "4 ranks, 3 partitions"
same few.serial.csv few.4.csv

# A checkpointed run: the same result, and checkpoints holding the same
# records as the serial build's.
"$sbin/ember-pagerank" --input g.h5 --iterations 20 --tolerance 0 --partitions 8 \
    --checkpoint-dir cks --checkpoint-every 10 --keep 5 --quiet --output ck.serial.csv
mpi 3 1 "$bin/ember-pagerank" --input g.h5 --iterations 20 --tolerance 0 \
    --partitions 8 --checkpoint-dir ckm --checkpoint-every 10 --keep 5 --threads 1 \
    --quiet --output ck.3.csv || fail "checkpointed run on 3 ranks"
same ck.serial.csv ck.3.csv
for f in cks/ckpt-*.h5; do
    [ -f "ckm/${f#cks/}" ] || fail "3 ranks wrote no ${f#cks/}"
    # The root attributes say when and with how many threads (rank 0's
    # own); the bound state must be the same records.
    h5diff -q "$f" "ckm/${f#cks/}" /datasets /datasets \
        || fail "checkpoint ${f#cks/} differs between serial and 3 ranks"
done
[ -z "$(ls ckm | grep -v '^ckpt-.*\.h5$' | grep -v '^ember.lock$')" ] \
    || fail "stray files in the checkpoint dir: $(ls ckm)"
echo "ok"
