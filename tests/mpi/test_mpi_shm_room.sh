#!/usr/bin/env bash
# PageRank's replicated arrays live in shared-memory windows whose backing
# files are in /dev/shm (or osc_sm_backing_directory). With too little room
# there, Open MPI's window failed on rank 0 alone while the other ranks
# waited for it: the job hung for good (600 KiB free), or a rank died of
# SIGBUS writing a window whose file had no pages (1600 KiB). Now rank 0
# checks the room first and every rank falls back to its own copy, with
# one warning: exit 0, the serial build's bytes, on 2 and 3 ranks.
# A small tmpfs is mounted where the system allows it (root); elsewhere
# the test hook EMBER_TEST_SHM_FREE stands in for the room, which checks
# the fallback but not Open MPI's own failure.
source "$(dirname "$0")/mpi_lib.bash"
work=$(mktemp -d)
mounted=""
trap '[ -n "$mounted" ] && umount "$work/fs"; rm -rf "$work"' EXIT
cd "$work"
"$sbin/ember-gen" kron --scale 17 --edge-factor 4 --seed 4 --output k.h5 --quiet
args=(--input k.h5 --iterations 10 --tolerance 0 --quiet)
"$sbin/ember-pagerank" "${args[@]}" --output ref.csv
mkdir fs
hook=()
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=600k tmpfs fs 2> /dev/null; then
    mounted=1
else
    echo "no tmpfs could be mounted: EMBER_TEST_SHM_FREE stands in for the room"
    export EMBER_TEST_SHM_FREE=614400
    hook=(-x EMBER_TEST_SHM_FREE)
fi
for sizes in 600k 1600k; do
    if [ -n "$mounted" ]; then
        mount -o remount,size=$sizes fs || fail "cannot resize the tmpfs to $sizes"
    elif [ $sizes = 1600k ]; then
        export EMBER_TEST_SHM_FREE=1638400
    fi
    for n in 2 3; do
        rm -f out.csv
        rc=0
        mpi "$n" 1 "${hook[@]}" --mca osc_sm_backing_directory "$work/fs" \
            "$bin/ember-pagerank" "${args[@]}" --output out.csv 2> err || rc=$?
        [ "$rc" = 0 ] || fail "$sizes free, $n ranks: exit $rc: $(cat err)"
        same out.csv ref.csv
        k=$(grep -c "too little for a shared window" err || true)
        [ "$k" = 1 ] || fail "$sizes free, $n ranks: the warning $k times, wanted once: $(cat err)"
    done
done
echo ok
