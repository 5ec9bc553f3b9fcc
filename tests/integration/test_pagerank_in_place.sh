#!/usr/bin/env bash
# ember-pagerank reads the sources of a sealed .h5 graph in place (mapped,
# under a read lease: include/ember/graph.h, opts.in_place). A writer that
# opens the input meanwhile is held off until the end of the iteration,
# when the run copies the edges out and lets it go: the run goes on and
# ends with the ranks of an undisturbed run. Where the kernel grants no
# lease (a file system without leases), the run reads the sources, and the
# same holds.
set -euo pipefail
bin=${EMBER_BIN:?}
work=$(mktemp -d)
pid=
trap '[ -z "$pid" ] || kill -9 "$pid" 2> /dev/null || true; rm -rf "$work"' EXIT
cd "$work"
fail() { echo "test_pagerank_in_place: FAIL: $*" >&2; exit 1; }

"$bin/ember-gen" kron --scale 14 --edge-factor 16 --seed 7 --output g.h5 --quiet
# a file is read in place only once it is 2 s old (the fingerprint's
# "racy file" rule)
sleep 2.1
args=(--input g.h5 --iterations 2000 --tolerance 0 --threads 2 --quiet)
"$bin/ember-pagerank" "${args[@]}" --output ref.csv
sum0=$(cksum < g.h5)

# The run's lease, as /proc/locks lists it ("LEASE ... READ <pid> ...").
leased() { grep -Eq "LEASE +(ACTIVE|BREAKING|BREAKER)? *READ +$1 " /proc/locks; }

"$bin/ember-pagerank" "${args[@]}" --output run.csv & pid=$!
for _ in $(seq 200); do
    leased "$pid" && break
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.02
done
if leased "$pid"; then
    # opening for writing waits for the run to let go (an iteration)
    exec 3>> g.h5
    exec 3>&-
    leased "$pid" && fail "the run still holds its lease after the writer got the file"
    kill -0 "$pid" 2> /dev/null || echo "note: the run had ended when the writer got in"
    mode="in place, a writer let in during the run"
else
    mode="read (no lease granted here)"
fi
wait "$pid" || fail "the run ($mode) failed"
pid=
cmp -s ref.csv run.csv || fail "ranks ($mode) differ from the undisturbed run"
[ "$(cksum < g.h5)" = "$sum0" ] || fail "the input changed"
echo "test_pagerank_in_place: ok ($mode)"
