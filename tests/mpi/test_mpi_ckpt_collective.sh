#!/usr/bin/env bash
# Checkpoints written collectively by several ranks (docs/mpi.md,
# "Checkpoints on many ranks"):
# - PageRank's checkpoint written on 2 and on 3 ranks holds the same data
#   as the serial build's (h5diff of every dataset and its attributes, and
#   of the root attributes but the time), and passes ember-inspect;
# - each restarts on another rank count (2 -> 3, 3 -> 1, 3 -> serial
#   build) to a final output cmp-identical to an uninterrupted serial run;
# - a collective checkpoint with one byte flipped is rejected on resume
#   and the previous one is used, to the same final output;
# - ranks whose checkpoint directories are not one shared directory are
#   refused before anything is written: exit 2, the directory named.
source "$(dirname "$0")/mpi_lib.bash"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
command -v h5diff >/dev/null || fail "no h5diff (hdf5-tools)"

"$sbin/ember-gen" kron --scale 12 --edge-factor 16 --seed 5 --output g.h5 --quiet
pr=(--input g.h5 --tolerance 0 --partitions 7 --quiet)
loud=(--input g.h5 --tolerance 0 --partitions 7) # says what it resumed from
ck=(--checkpoint-every 10 --keep 5)
"$sbin/ember-pagerank" "${pr[@]}" --iterations 40 --threads 2 --output full.csv

# 20 iterations on the serial build, 2 ranks and 3 ranks (1 thread each,
# so that the root attribute "threads" is the same).
"$sbin/ember-pagerank" "${pr[@]}" "${ck[@]}" --checkpoint-dir cks --iterations 20 \
    --threads 1 --output s.csv
mpi 2 1 "$bin/ember-pagerank" "${pr[@]}" "${ck[@]}" --checkpoint-dir ck2 \
    --iterations 20 --threads 1 --output p2.csv || fail "2 ranks, 20 iterations"
mpi 3 1 "$bin/ember-pagerank" "${pr[@]}" "${ck[@]}" --checkpoint-dir ck3 \
    --iterations 20 --threads 1 --output p3.csv || fail "3 ranks, 20 iterations"

c=ckpt-000000000020.h5
for d in ck2 ck3; do
    [ -f "$d/$c" ] || fail "$d has no $c: $(ls "$d")"
    [ ! -e "$d/$c.tmp" ] || fail "$d/$c.tmp left behind"
    "$sbin/ember-inspect" "$d/$c" > "$d.inspect" || fail "ember-inspect fails $d/$c"
    # Every dataset (data and attributes: partition_offsets), none missing;
    # but /scalars/history, which holds each iteration's compute seconds
    # (different in any two runs).
    h5diff -r --exclude-attribute / --exclude-path /scalars/history cks/$c "$d/$c" > "$d.diff" 2>&1 \
        || fail "$d/$c differs from the serial checkpoint: $(head -20 "$d.diff")"
    # The root attributes, but the time of writing.
    for a in format format_version kind ember_version program parameters \
             state_signature fingerprint iteration lineage threads; do
        diff <(h5dump -a "/$a" cks/$c | tail -n +2) <(h5dump -a "/$a" "$d/$c" | tail -n +2) \
            > "$d.attr" || fail "root attribute $a of $d/$c differs: $(head -20 "$d.attr")"
    done
    grep -q 'ATTRIBUTE "iteration"' <(h5dump -A "$d/$c") || fail "no root attributes in $d/$c"
done
# h5diff sees data differences (a check of the check): another iteration.
if h5diff -r --exclude-attribute / cks/ckpt-000000000010.h5 ck2/$c >/dev/null 2>&1; then
    fail "h5diff finds no difference between iterations 10 and 20"
fi

# Restarts on other rank counts, each to the uninterrupted serial result.
mpi 3 1 "$bin/ember-pagerank" "${loud[@]}" "${ck[@]}" --checkpoint-dir ck2 \
    --iterations 40 --threads 1 --resume require --output r23.csv 2> r23.err \
    || fail "2 -> 3 ranks: $(cat r23.err)"
grep -q "resumed from ck2/$c" r23.err || fail "3 ranks did not resume from $c: $(cat r23.err)"
same full.csv r23.csv
cp -r ck3 ck3s
mpi 1 2 "$bin/ember-pagerank" "${pr[@]}" "${ck[@]}" --checkpoint-dir ck3 \
    --iterations 40 --threads 2 --resume require --output r31.csv || fail "3 -> 1 rank"
same full.csv r31.csv
"$sbin/ember-pagerank" "${pr[@]}" "${ck[@]}" --checkpoint-dir ck3s --iterations 40 \
    --threads 2 --resume require --output r3s.csv || fail "3 ranks -> serial build"
same full.csv r3s.csv

# A flipped byte in the middle of the newest collective checkpoint: the
# resume on 2 ranks skips it, says why, and resumes from iteration 10.
mkdir ckd
mpi 2 1 "$bin/ember-pagerank" "${pr[@]}" "${ck[@]}" --checkpoint-dir ckd \
    --iterations 20 --threads 1 --output d.csv || fail "2 ranks, ckd"
size=$(stat -c %s ckd/$c)
off=$((size / 2))
byte=$(od -An -tu1 -j "$off" -N1 ckd/$c | tr -d ' ')
printf "$(printf '\\%03o' $(( (byte ^ 0x40) & 255 )))" \
    | dd of=ckd/$c bs=1 seek="$off" conv=notrunc status=none
cmp -s ckd/$c ck2/$c && fail "the byte was not flipped"
mpi 2 1 "$bin/ember-pagerank" "${loud[@]}" "${ck[@]}" --checkpoint-dir ckd \
    --iterations 40 --threads 1 --resume require --output rd.csv 2> rd.err \
    || fail "2 ranks, resume past the damaged file: $(cat rd.err)"
grep -q "skipping checkpoint ckd/$c" rd.err || fail "the damage was not reported: $(cat rd.err)"
grep -q "resumed from ckd/ckpt-000000000010.h5" rd.err || fail "not resumed from 10: $(cat rd.err)"
same full.csv rd.csv

# Checkpoint directories that the ranks do not share (each rank its own
# working directory, the same relative --checkpoint-dir): refused when the
# loop starts (the probe file ember-shared.tmp, not a checkpoint's .tmp:
# no iteration is computed and lost), exit 2 on every rank, the directory
# named; no file.
mkdir -p own0 own1
set +e
OMP_NUM_THREADS=1 mpirun --oversubscribe --bind-to none --timeout 120 -x OMP_NUM_THREADS \
    -x OMP_WAIT_POLICY -n 1 -wdir "$PWD/own0" "$bin/ember-pagerank" \
    --input "$PWD/g.h5" --partitions 7 --quiet --checkpoint-dir ck --checkpoint-every 5 \
    --iterations 10 --threads 1 --output o.csv : \
    -n 1 -wdir "$PWD/own1" "$bin/ember-pagerank" \
    --input "$PWD/g.h5" --partitions 7 --quiet --checkpoint-dir ck --checkpoint-every 5 \
    --iterations 10 --threads 1 --output o.csv > split.out 2> split.err
st=$?
set -e
[ "$st" -eq 2 ] || fail "ranks with unshared checkpoint dirs: exit $st, wanted 2: $(cat split.err)"
grep -q "checkpoint dir ck is not shared by the ranks" split.err \
    || fail "the refusal does not name the directory: $(cat split.err)"
grep -q "ember-shared.tmp" split.err \
    || fail "not refused at the start, before any iteration: $(cat split.err)"
[ -z "$(ls own0/ck | grep -v '^ember.lock$')" ] \
    || fail "files left in rank 0's directory: $(ls own0/ck)"
[ ! -e own0/o.csv ] || fail "an output was written"
echo ok
