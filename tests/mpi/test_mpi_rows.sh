#!/usr/bin/env bash
# ember-pagerank on several ranks reads only the rows each rank owns from
# an ember HDF5 file with the stored pull layout: each rank's diagnostics
# line ("rank R of N holds rows [a, b): E of M edges") shows E < M when
# the rank does not own every partition, the E of the ranks add up to M,
# the row ranges tile [0, n) in rank order, and the output is
# cmp-identical to the serial build's: on 2 and 3 ranks, and on 4 ranks
# with 3 partitions (a rank with no row holds no edge). Text input is
# parsed whole and then trimmed to the rank's rows; --verify keeps the
# whole graph on every rank (E = M).
source "$(dirname "$0")/mpi_lib.bash"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

"$sbin/ember-gen" kron --scale 12 --edge-factor 16 --seed 5 --output g.h5 --quiet

# held LOG N PARTS: checks the N ranks' lines of LOG; prints the total.
held() {
    local log=$1 n=$2 parts=$3
    local lines
    lines=$(sed -n 's/^ember-pagerank: rank \([0-9]*\) of \([0-9]*\) holds rows \[\([0-9]*\), \([0-9]*\)): \([0-9]*\) of \([0-9]*\) edges.*/\1 \2 \3 \4 \5 \6/p' "$log" | sort -n)
    [ "$(echo "$lines" | grep -c .)" = "$n" ] || fail "$log: expected $n rank lines: $(cat "$log")"
    echo "$lines" | awk -v n="$n" -v parts="$parts" '
        { if ($2 != n) bad = bad " rank " $1 " says " $2 " ranks";
          if ($1 != NR - 1) bad = bad " rank numbers";
          if ($3 != next_lo && $4 > $3) bad = bad " rows of rank " $1 " start at " $3 ", expected " next_lo;
          if ($4 > $3) next_lo = $4;
          owns = int(parts * ($1 + 1) / n) - int(parts * $1 / n);
          if (owns < parts && $5 >= $6) bad = bad " rank " $1 " holds " $5 " of " $6;
          if (owns == 0 && $5 != 0) bad = bad " rank " $1 " owns nothing but holds " $5;
          sum += $5; m = $6 }
        END { if (sum != m) bad = bad " edges add up to " sum " of " m;
              if (bad != "") { print "BAD" bad; exit 1 } print sum }' \
        || fail "$log: $(echo "$lines" | tr '\n' ';')"
}

for np in 2:8 3:8 4:3; do
    n=${np%:*} parts=${np#*:}
    args=(--input g.h5 --iterations 20 --tolerance 0 --partitions "$parts")
    [ -f "serial.$parts.csv" ] || "$sbin/ember-pagerank" "${args[@]}" --threads 1 \
        --output "serial.$parts.csv" > /dev/null 2>&1 || fail "serial run, $parts partitions"
    mpi "$n" 1 "$bin/ember-pagerank" "${args[@]}" --threads 1 --output "r.$n.csv" \
        > "log.$n" 2>&1 || fail "$n ranks: $(cat "log.$n")"
    same "serial.$parts.csv" "r.$n.csv"
    held "log.$n" "$n" "$parts" > /dev/null
done

# A text file is parsed whole on every rank, which then keeps its own rows.
"$sbin/ember-pagerank" --input "$src/data/karate.el" --undirected --iterations 5 \
    --partitions 4 --threads 1 --output serial.el.csv > /dev/null 2>&1 || fail "serial text"
mpi 2 1 "$bin/ember-pagerank" --input "$src/data/karate.el" --undirected --iterations 5 \
    --partitions 4 --threads 1 --output r.el.csv > log.el 2>&1 || fail "text input: $(cat log.el)"
same serial.el.csv r.el.csv
held log.el 2 4 > /dev/null
# --verify keeps the whole graph (its serial check reads every row).
mpi 2 1 "$bin/ember-pagerank" --input g.h5 --iterations 5 --tolerance 0 --partitions 8 \
    --threads 1 --verify > log.v 2>&1 || fail "--verify: $(cat log.v)"
grep -q 'Verification: PASS' log.v || fail "--verify did not pass: $(cat log.v)"
m=$(sed -n 's/.*rank 1 of 2 holds rows \[0, [0-9]*): \([0-9]*\) of \([0-9]*\) edges.*/\1 \2/p' log.v)
set -- $m
[ "$#" = 2 ] && [ "$1" = "$2" ] || fail "--verify: rank 1 does not hold the whole graph: $(cat log.v)"
# A checkpoint in 7 partitions, resumed with --force-resume and another
# --partitions: serially the restored partitioning is used, but on several
# ranks each rank loaded the rows of this run's partitions, so it is
# refused with exit 2 naming --partitions; with --partitions 7 it resumes.
ck=(--input g.h5 --iterations 30 --tolerance 0 --threads 1 --checkpoint-dir ck
    --checkpoint-every 5)
set +e
mpi 2 1 "$bin/ember-pagerank" "${ck[@]}" --partitions 7 --stop-at 10 > log.stop 2>&1
st=$?
mpi 2 1 "$bin/ember-pagerank" "${ck[@]}" --partitions 5 --force-resume > log.p5 2>&1
st5=$?
set -e
[ "$st" = 75 ] || fail "--stop-at 10: exit $st: $(cat log.stop)"
[ "$st5" = 2 ] && grep -q -- "where --partitions 7 would do" log.p5 \
    || fail "--partitions 5 against a 7-partition checkpoint: exit $st5: $(cat log.p5)"
mpi 2 1 "$bin/ember-pagerank" "${ck[@]}" --partitions 7 --output r.ck.csv > log.p7 2>&1 \
    || fail "resume with --partitions 7: $(cat log.p7)"
grep -q "resumed from" log.p7 || fail "no resume: $(cat log.p7)"
"$sbin/ember-pagerank" --input g.h5 --iterations 30 --tolerance 0 --partitions 7 \
    --threads 1 --output serial.ck.csv > /dev/null 2>&1 || fail "serial 30 iterations"
same serial.ck.csv r.ck.csv
echo "ok"
