#!/usr/bin/env bash
# Checkpoint cost (issue: checkpoints and resumable iteration), measured in
# this run, medians of RUNS:
#   1. writing a 1 GiB checkpoint (ember_loop_checkpoint: HDF5, Fletcher32,
#      tmp + fsync + rename + dir fsync) against dd conv=fsync of the same
#      bytes; restoring it (a new loop's first next: open, read, verify
#      checksums) against dd reading the same bytes. Goal: >= 0.8x.
#   2. ember-pagerank on a Kronecker graph (SCALE, default 20), 20
#      iterations, a checkpoint every 5, synchronous (--checkpoint-sync)
#      and asynchronous (the default), against no checkpoints: wall time of the whole
#      process. Goal: at most +5%.
# Printed, never asserted: these machines are shared and noisy.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${EMBER_BUILD:-$here/../build}
bin=${EMBER_BIN:-$build/bin}
RUNS=${RUNS:-5} BYTES=${BYTES:-1073741824} SCALE=${SCALE:-20}
export OMP_NUM_THREADS=${THREADS:-2}
work=$(mktemp -d "${BENCH_DIR:-/tmp}/ember-ckbench.XXXXXX")
trap 'rm -rf "$work"' EXIT

gcc -O2 ${BENCH_CFLAGS:-} -fopenmp -I"$here/../include" "$here/ckpt_io.c" -L"$build/lib" -lember \
    -Wl,-rpath,"$build/lib" -o "$work/ckpt_io"
# Cold reads where the machine allows it (root): both readers then read
# from the disk, not from the page cache.
cold=true
if [ -w /proc/sys/vm/drop_caches ]; then
    cold='sync; echo 3 > /proc/sys/vm/drop_caches'
fi
export CKPT_IO_COLD=$cold
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

: > "$work/w"; : > "$work/r"; : > "$work/dw"; : > "$work/dr"
mb=$((BYTES / 1048576))
for _ in $(seq "$RUNS"); do
    rm -rf "$work/ck"
    read -r w r size < <("$work/ckpt_io" "$work/ck" "$BYTES")
    echo "$w" >> "$work/w"; echo "$r" >> "$work/r"
    t0=$(date +%s%N)
    dd if=/dev/zero of="$work/dd.bin" bs=1M count="$mb" conv=fsync status=none
    sh -c "$cold"
    t1=$(date +%s%N)
    dd if="$work/dd.bin" of=/dev/null bs=1M status=none
    t2=$(date +%s%N)
    echo "$(( t1 - t0 ))e-9" >> "$work/dw"; echo "$(( t2 - t1 ))e-9" >> "$work/dr"
    rm -f "$work/dd.bin"
done
w=$(median < "$work/w"); r=$(median < "$work/r")
dw=$(median < "$work/dw"); dr=$(median < "$work/dr")
echo "checkpoint I/O: $mb MiB of f64, median of $RUNS (file $size bytes), reads $([ "$cold" = true ] && echo warm || echo cold)"
awk -v w="$w" -v r="$r" -v dw="$dw" -v dr="$dr" -v b="$BYTES" 'BEGIN {
    printf "  write   ember %.3f s (%.0f MB/s)   dd conv=fsync %.3f s (%.0f MB/s)   throughput ratio %.2fx\n", w, b/w/1e6, dw, b/dw/1e6, dw/w
    printf "  restore ember %.3f s (%.0f MB/s)   dd read       %.3f s (%.0f MB/s)   throughput ratio %.2fx\n", r, b/r/1e6, dr, b/dr/1e6, dr/r
}'

"$bin/ember-gen" kron --scale "$SCALE" --edge-factor 16 --seed 1 --output "$work/g.h5" --quiet
: > "$work/plain"; : > "$work/ck5"; : > "$work/async"
pr() { "$bin/ember-pagerank" --input "$work/g.h5" --iterations 20 --tolerance 0 --quiet "$@"; }
for _ in $(seq "$RUNS"); do
    rm -rf "$work/pck" "$work/ack"
    t0=$(date +%s%N)
    pr --output "$work/a.h5"
    t1=$(date +%s%N)
    pr --output "$work/b.h5" --checkpoint-dir "$work/pck" --checkpoint-every 5 --checkpoint-sync
    t2=$(date +%s%N)
    pr --output "$work/c.h5" --checkpoint-dir "$work/ack" --checkpoint-every 5 \
        --checkpoint-async
    t3=$(date +%s%N)
    echo "$(( t1 - t0 ))e-9" >> "$work/plain"; echo "$(( t2 - t1 ))e-9" >> "$work/ck5"
    echo "$(( t3 - t2 ))e-9" >> "$work/async"
done
cmp -s <(h5dump -d /ranks "$work/a.h5" | tail -n +3) <(h5dump -d /ranks "$work/b.h5" | tail -n +3) \
    || { echo "ranks with and without checkpoints differ" >&2; exit 1; }
cmp -s <(h5dump -d /ranks "$work/a.h5" | tail -n +3) <(h5dump -d /ranks "$work/c.h5" | tail -n +3) \
    || { echo "ranks with async checkpoints differ" >&2; exit 1; }
p=$(median < "$work/plain"); c=$(median < "$work/ck5"); a=$(median < "$work/async")
echo "pagerank scale $SCALE, 20 iterations, threads $OMP_NUM_THREADS, median of $RUNS, whole process:"
awk -v p="$p" -v c="$c" -v a="$a" 'BEGIN {
    printf "  no checkpoints %.3f s\n", p
    printf "  checkpoint every 5, synchronous  %.3f s   overhead %+.1f%%\n", c, (c/p - 1) * 100
    printf "  checkpoint every 5, asynchronous %.3f s   overhead %+.1f%%\n", a, (a/p - 1) * 100 }'
