#!/usr/bin/env bash
# A result continued by --force-resume on another graph is checked on rank
# 0 before it goes out (tests/integration/test_forced_checked.sh for one
# process), also when each rank holds only its own rows (ember-cc loads the
# whole graph again on rank 0 for it) and in a later plain run of the
# checkpoints that carry the forced one: exit 2, no output.
source "$(dirname "$0")/mpi_lib.bash"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# expect_refused WHAT PROGRAM ARGS...: on 2 ranks, exit 2, the check's
# message, no output o.csv
expect_refused() {
    local what=$1 rc=0
    shift
    mpi 2 1 "$bin/$1" "${@:2}" --output o.csv > out 2> err || rc=$?
    [ "$rc" = 2 ] || fail "$*: exit $rc, expected 2: $(cat err)"
    grep -q "resumed by force are not this graph's" err || fail "$*: $(cat err)"
    [ ! -e o.csv ] || fail "$what: a refused result was written"
}

printf '0 1\n1 2\n2 3\n3 4\n5 6\n6 7\n' > split.el
(cat split.el; echo "4 5") > g.el
# --partitions 2: each rank holds one, so rank 0 loads the whole graph again
mpi 2 1 "$bin/ember-cc" --input g.el --checkpoint-dir ckc --partitions 2 --quiet > /dev/null
cp split.el g.el
expect_refused "cc forced" ember-cc --input g.el --checkpoint-dir ckc --partitions 2 \
    --force-resume
expect_refused "cc carried" ember-cc --input g.el --checkpoint-dir ckc --partitions 2

printf '0 1 1\n1 2 1\n2 3 1\n0 4 10\n4 3 10\n' > s.el
mpi 2 1 "$bin/ember-sssp" --input s.el --source 0 --checkpoint-dir cks --quiet > /dev/null
printf '0 1 1\n1 2 1\n0 4 10\n4 3 10\n' > s.el
expect_refused "sssp forced" ember-sssp --input s.el --source 0 --checkpoint-dir cks \
    --force-resume
expect_refused "sssp carried" ember-sssp --input s.el --source 0 --checkpoint-dir cks
echo "test_mpi_forced_checked: PASS"
