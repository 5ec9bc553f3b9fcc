#!/usr/bin/env bash
# A checkpoint directory that fills up, or that one rank cannot write, ends
# a job of several ranks cleanly, as on one process: HDF5 cannot agree on a
# failure inside its own collective calls, and both used to hang the job
# for good (2 ranks) or crash it in MPI_Finalize (3).
#  1. The disk fills: a 1.2 MB tmpfs holds the first checkpoint (about
#     0.5 MB) but not a second beside it. Exit 1 with "no room", the first
#     checkpoint intact, no .tmp left; the job resumes from it once there
#     is room, to the serial build's bits.
#  2. The directory is read-only on the last rank only (its own mount
#     namespace, a read-only bind mount): refused before any iteration,
#     exit 2, naming the rank.
# Both need root (mount, unshare); without it the test says so and passes.
source "$(dirname "$0")/mpi_lib.bash"
work=$(mktemp -d)
mnt=$work/full
trap 'mountpoint -q "$mnt" && umount "$mnt"; rm -rf "$work"' EXIT
cd "$work"
if [ "$(id -u)" != 0 ] || ! command -v unshare > /dev/null; then
    echo "test_mpi_ckpt_dir_trouble: needs root and unshare: SKIPPED"
    exit 0
fi
mkdir "$mnt"
mount -t tmpfs -o size=1200k none "$mnt" || { echo "no tmpfs: SKIPPED"; exit 0; }

"$sbin/ember-gen" kron --scale 16 --seed 5 --output g.h5 --quiet
args=(--input g.h5 --damping 0.99 --tolerance 0 --iterations 30)
"$sbin/ember-pagerank" "${args[@]}" --quiet --output want.csv

for n in 2 3; do
    rm -rf "${mnt:?}"/*
    rc=0
    mpi "$n" 1 "$bin/ember-pagerank" "${args[@]}" --quiet --checkpoint-dir "$mnt/ck" \
        --checkpoint-every 10 --output got.csv > out.txt 2>&1 || rc=$?
    [ "$rc" = 1 ] || fail "$n ranks, a full disk: exit $rc, expected 1: $(cat out.txt)"
    grep -q "no room: about [0-9]* bytes needed" out.txt || fail "$n ranks: $(cat out.txt)"
    grep -q "the checkpoint of iteration 10 is intact" out.txt || fail "$n ranks: $(cat out.txt)"
    ! grep -q "Segmentation\|signal 11" out.txt || fail "$n ranks crashed: $(cat out.txt)"
    [ "$(ls "$mnt/ck")" = "ckpt-000000000010.h5
ember.lock" ] || fail "$n ranks: left $(ls "$mnt/ck")"
done
cp -r "$mnt/ck" ck
mpi 2 1 "$bin/ember-pagerank" "${args[@]}" --checkpoint-dir ck --output got.csv \
    > out.txt 2>&1 || fail "the resume with room: $(cat out.txt)"
grep -q "resumed from .*ckpt-000000000010.h5" out.txt || fail "did not resume from 10"
cmp -s got.csv want.csv || fail "the resumed ranks differ from the serial build's"

cat > ro.sh <<'SH'
#!/bin/bash
# the last rank sees $1 read-only
dir=$1
shift
if [ "$OMPI_COMM_WORLD_RANK" = "$((OMPI_COMM_WORLD_SIZE - 1))" ]; then
    exec unshare -m sh -c 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" &&
        exec "$@"' "$dir" "$@"
fi
exec "$@"
SH
chmod +x ro.sh
for n in 2 3; do
    rm -rf ro
    mkdir ro
    rc=0
    mpi "$n" 1 ./ro.sh ro "$bin/ember-pagerank" "${args[@]}" --quiet --checkpoint-dir ro \
        --checkpoint-every 10 --output ro.csv > out.txt 2>&1 || rc=$?
    [ "$rc" = 2 ] || fail "$n ranks, read-only on one: exit $rc, expected 2: $(cat out.txt)"
    grep -q "rank $((n - 1)) cannot write in it" out.txt || fail "$n ranks: $(cat out.txt)"
done
echo "test_mpi_ckpt_dir_trouble: PASS"
