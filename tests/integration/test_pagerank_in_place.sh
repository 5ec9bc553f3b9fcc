#!/usr/bin/env bash
# ember-pagerank reads the sources of a sealed .h5 graph in place (mapped,
# under a read lease: include/ember/graph.h, ember_graph_load_in_place). A
# writer that opens the input meanwhile is held off until the end of the
# iteration, when the run copies the edges out and lets it go; the writer
# then zeroes most of the file: the run goes on and ends with the ranks of
# an undisturbed run. Where ember takes a lease (its own file on ext2/3/4,
# XFS, Btrfs or F2FS, leases enabled, a break time of 3 s or more)
# the run must hold one; elsewhere it reads the sources, and the same
# holds.
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
args=(--input g.h5 --iterations 10000 --tolerance 0 --threads 2 --quiet)
"$bin/ember-pagerank" "${args[@]}" --output ref.csv
sum0=$(cksum < g.h5)

# The run's lease, as /proc/locks lists it ("LEASE ... READ <pid> ...").
leased() { grep -Eq "LEASE +(ACTIVE|BREAKING|BREAKER)? *READ +$1 " /proc/locks; }

"$bin/ember-pagerank" "${args[@]}" --output run.csv & pid=$!
for _ in $(seq 500); do
    leased "$pid" && break
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.02
done
# whether ember takes a lease here (mapfile.c, lease_fs_local)
case $(stat -f -c %T .) in
    ext2/ext3 | xfs | btrfs | f2fs) local_fs=1 ;;
    *) local_fs=0 ;;
esac
[ "$(cat /proc/sys/fs/leases-enable 2> /dev/null || echo 0)" = 1 ] || local_fs=0
[ "$(cat /proc/sys/fs/lease-break-time 2> /dev/null || echo 0)" -ge 3 ] || local_fs=0
if leased "$pid"; then
    [ "$local_fs" = 1 ] || fail "a lease on a file system ember does not trust with one"
    # opening for writing waits for the run to let go (an iteration); then
    # 60 % of the file, the sources among them, become zeros
    size=$(stat -c %s g.h5)
    dd if=/dev/zero of=g.h5 bs=4096 seek=$((size * 3 / 10 / 4096)) \
        count=$((size * 6 / 10 / 4096)) conv=notrunc status=none
    leased "$pid" && fail "the run still holds its lease after the writer got the file"
    kill -0 "$pid" 2> /dev/null || echo "note: the run had ended when the writer got in"
    [ "$(cksum < g.h5)" != "$sum0" ] || fail "the writer changed nothing"
    mode="in place, a writer let in during the run"
else
    [ "$local_fs" = 0 ] || fail "no lease on $(stat -f -c %T .), where ember takes one"
    mode="read (no lease here)"
fi
wait "$pid" || fail "the run ($mode) failed"
pid=
cmp -s ref.csv run.csv || fail "ranks ($mode) differ from the undisturbed run"
[ "$mode" != "read (no lease here)" ] || [ "$(cksum < g.h5)" = "$sum0" ] || fail "the input changed"

# An input open for writing elsewhere (here the shell's descriptor 4) is
# refused where ember takes a lease: which bytes a run would read cannot
# be known. Elsewhere the run reads it.
exec 4<> g.h5
if "$bin/ember-pagerank" "${args[@]}" --output busy.csv 2> busy.err; then
    exec 4<&-
    [ "$local_fs" = 0 ] || fail "an input open for writing was read"
else
    status=$?
    exec 4<&-
    [ "$local_fs" = 1 ] && [ "$status" = 2 ] && grep -q "g.h5: open for writing" busy.err ||
        fail "an input open for writing: exit $status, $(cat busy.err)"
fi

# On FUSE (bindfs, where it and /dev/fuse exist) the kernel grants a lease
# too, but a write behind the daemon breaks none: ember must read instead.
fuse="FUSE not tried (no bindfs)"
if command -v bindfs > /dev/null && [ -e /dev/fuse ] && mkdir back mnt &&
    "$bin/ember-gen" kron --scale 14 --edge-factor 16 --seed 7 --output back/g.h5 --quiet &&
    bindfs back mnt 2> /dev/null; then
    trap '[ -z "$pid" ] || kill -9 "$pid" 2> /dev/null || true
          fusermount -u "$work/mnt" 2> /dev/null || umount "$work/mnt" 2> /dev/null || true
          rm -rf "$work"' EXIT
    sleep 2.1
    "$bin/ember-pagerank" --input mnt/g.h5 "${args[@]:2}" --output fuse.csv & pid=$!
    seen=0
    while kill -0 "$pid" 2> /dev/null; do
        leased "$pid" && seen=1
        sleep 0.02
    done
    wait "$pid" || fail "the run on FUSE failed"
    pid=
    [ "$seen" = 0 ] || fail "a lease taken on FUSE"
    cmp -s ref.csv fuse.csv || fail "ranks on FUSE differ"
    fuse="FUSE read"
fi
echo "test_pagerank_in_place: ok ($mode; $fuse)"
