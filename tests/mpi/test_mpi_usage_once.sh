#!/usr/bin/env bash
# Usage errors under mpirun: a mistake every rank makes alike (a bad
# option, a missing input, a checkpoint directory that cannot be made, a
# program's own check of its options, such as a --plan that runs on one
# process) is
# said once, by rank 0, not once a rank; every rank exits 2. A rank that
# stops on something the others do not (an MPMD launch that gives one rank
# another option) still says it, naming its rank, and rank 0 says that
# another rank stopped, instead of waiting in a collective until mpirun
# aborts the job. --help or --version on one rank alone stops every rank
# with exit 2 (the job hung).
source "$(dirname "$0")/mpi_lib.bash"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
cp "$src/data/karate.el" g.el
export OMP_NUM_THREADS=1

# once N PATTERN [PROGRAM] ARGS...: ember-pagerank (or ember-PROGRAM) ARGS
# on N ranks exits 2 and its stderr holds PATTERN exactly once, with no
# rank's label
once() {
    local n=$1 pattern=$2 rc=0 prog=ember-pagerank
    shift 2
    case $1 in cc|sssp|kmeans|maps) prog=ember-$1; shift ;; esac
    mpi "$n" 1 "$bin/$prog" "$@" > out 2> err || rc=$?
    [ "$rc" = 2 ] || fail "$*: exit $rc, expected 2: $(cat err)"
    local k
    k=$(grep -c -- "$pattern" err || true)
    [ "$k" = 1 ] || fail "$* on $n ranks: '$pattern' $k times, expected once: $(cat err)"
    ! grep -q "(rank [0-9]*)" err || fail "$*: a rank's label on a shared message: $(cat err)"
}
for n in 2 3; do
    once "$n" "--iterations: 'x' is not a whole number" --input g.el --iterations x
    once "$n" "unknown option '--bogus'" --input g.el --bogus
    once "$n" "--input missing.el: no such file" --input missing.el
    once "$n" "--checkpoint-dir /proc/no/such" --input g.el --checkpoint-dir /proc/no/such
    once "$n" "--output nodir/o.csv: cannot create a file in nodir" --input g.el \
        --output nodir/o.csv
    # the programs' own checks of their options (ember_cli_program.check)
    once "$n" "--input GRAPH is required" --iterations 3
    once "$n" "--format: 'xx' is not one of" --input g.el --format xx
    once "$n" "--plan afforest runs on one process" cc --input g.el --plan afforest
    once "$n" "--plan push runs on one process" sssp --input g.el --source 0 --plan push
    once "$n" "--k is required" kmeans --input g.el
    once "$n" "--n 9223372036854775808: out of range" maps --n 9223372036854775808
    once "$n" "--lineage-svg x.png: draws SVG" maps --n 10 --maps 3 --lineage-svg x.png
    mkdir -p o2.centroids.csv
    once "$n" "o2.centroids.csv: is a directory, not a file" kmeans --input g.el --k 2 \
        --output o2.csv
done

# A tool an option needs (graphviz's dot for --lineage-svg), missing on
# every rank: said once too (each rank said it)
rc=0
mpi 2 1 env PATH=/nonexistent-ember-dir "$bin/ember-maps" --n 10 --maps 3 \
    --lineage-svg x.svg > out 2> err || rc=$?
[ "$rc" = 2 ] || fail "--lineage-svg without dot: exit $rc, expected 2: $(cat err)"
[ "$(grep -c "needs dot, which is not installed" err)" = 1 ] ||
    fail "--lineage-svg without dot: not said once: $(cat err)"

# One rank alone given a bad option: its own line, and rank 0's.
rc=0
mpirun --oversubscribe --bind-to none --timeout 120 -x OMP_NUM_THREADS \
    -n 1 "$bin/ember-pagerank" --input g.el --iterations 5 \
    : -n 1 "$bin/ember-pagerank" --input g.el --iterations x > out 2> err || rc=$?
[ "$rc" = 2 ] || fail "rank 1 alone with a bad option: exit $rc, expected 2: $(cat err)"
grep -q "(rank 1): --iterations: 'x' is not a whole number" err ||
    fail "no message from rank 1: $(cat err)"
grep -q "^ember-pagerank: another rank stopped on its arguments" err ||
    fail "no message from rank 0: $(cat err)"

# --help or --version on one rank alone: every rank stops with exit 2 (the
# others waited for it in the first collective, for good)
for flag in --help --version; do
    for first in yes no; do
        rc=0
        a=(--input g.el --iterations 5) b=(--input g.el --iterations 5 "$flag")
        [ $first = yes ] && { a=("${b[@]}"); b=(--input g.el --iterations 5); }
        mpirun --oversubscribe --bind-to none --timeout 60 -x OMP_NUM_THREADS \
            -n 1 "$bin/ember-pagerank" "${a[@]}" : -n 1 "$bin/ember-pagerank" "${b[@]}" \
            > out 2> err || rc=$?
        [ "$rc" = 2 ] || fail "$flag on one rank (rank 0: $first): exit $rc, expected 2: $(cat err)"
        [ $first = yes ] || grep -q "another rank was given --help or --version" err ||
            fail "$flag on rank 1 alone: no message from rank 0: $(cat err)"
    done
done
echo ok
