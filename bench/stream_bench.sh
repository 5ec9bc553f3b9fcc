#!/usr/bin/env bash
# Streaming word count (issue 5): ember-stream-wordcount against a plain
# single-pass C word count (bench/stream_wc_baseline.c, one thread) over
# the same bytes, measured in this run.
#
# Data: NFILES small files of about FILE_BYTES bytes (default 4000 x 8 KB =
# 32 MB), words from a Zipf(1) vocabulary of VOCAB (50,000) words; read
# once before timing so both sides read from the page cache.
#
# Throughput (goal: ember at least 0.5x the baseline):
#   baseline: its own timer around reading and counting every file;
#   ember:    --trigger available-now, BATCH_FILES files per batch (each
#             size in the list: 4, 8 and 16 MB batches), a fresh
#             checkpoint location and a directory sink; the bytes
#             over the sum of the batches' seconds (each batch from
#             planning to commit: reading, counting, the state merge, the
#             sink file, the state snapshot and every fsync; the process
#             start is not counted), and also over the whole run's wall
#             time. Both output modes; complete mode writes the whole
#             table every batch.
# Per-batch overhead of an empty batch (goal: under 5 ms): EMPTY batches of
# one empty file each, available-now; the median of the batches' seconds
# (no trigger wait is in it). With an empty state, and with the state of
# the 32 MB run (update mode: an empty output file; complete mode rewrites
# the whole table, so that figure is output cost, not overhead). A batch
# makes three durable commits in a row (offsets entry, sink file, commit
# entry), so the disk's latency for one (write, fsync, rename, fsync the
# directory) is measured right before each and printed beside it: on a
# shared machine it moves from 0.4 ms to 10 ms from one minute to the next.
#
# RUNS runs of each, alternating; medians are reported (RUNS=0: only the
# empty batches). The complete-mode result is checked against the
# baseline's count, byte for byte.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${EMBER_BUILD:-$here/../build}
RUNS=${RUNS:-5} THREADS=${THREADS:-2}
NFILES=${NFILES:-4000} FILE_BYTES=${FILE_BYTES:-8000} VOCAB=${VOCAB:-50000}
BATCH_FILES=${BATCH_FILES:-"500 1000 2000"} EMPTY=${EMPTY:-200}
export OMP_NUM_THREADS=$THREADS
wc=$build/bin/ember-stream-wordcount
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cc -O2 -o "$work/baseline" "$here/stream_wc_baseline.c" -lm
"$work/baseline" gen "$work/src" "$NFILES" "$FILE_BYTES" "$VOCAB" 7
cat "$work/src"/* >/dev/null

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
now() { date +%s.%N; }
# The seconds of each batch, from the progress lines.
batch_seconds() { sed -n 's/.*, \([0-9.]*\) s (at [0-9.]* s).*/\1/p' "$1"; }

run_ember() { # MODE SOURCE LOCATION [more flags]: stderr to $work/log
    local mode=$1 src=$2 loc=$3
    shift 3
    "$wc" --source "$src" --checkpoint-location "$loc" --sink "$loc.out" \
        --output-mode "$mode" --trigger available-now --threads "$THREADS" "$@" \
        2>"$work/log"
}

bytes=$(cat "$work/src"/* | wc -c)
"$work/baseline" count "$work/src" "$work/baseline.csv" >/dev/null
for r in $(seq "$RUNS"); do
    out=$("$work/baseline" count "$work/src" "$work/baseline.csv")
    echo "$out" | awk '{ print $4 }' >>"$work/base.s"
    for b in $BATCH_FILES; do
        for mode in update complete; do
            rm -rf "$work/ck" "$work/ck.out"
            t0=$(now)
            run_ember "$mode" "$work/src" "$work/ck" --max-files-per-trigger "$b"
            t1=$(now)
            echo "$t1 - $t0" | bc -l >>"$work/$mode.$b.wall"
            batch_seconds "$work/log" | awk '{ s += $1 } END { print s }' >>"$work/$mode.$b.s"
            if [ "$mode" = complete ]; then
                newest=$(ls "$work/ck.out"/batch-*.csv | sort | tail -1)
                cmp -s "$newest" "$work/baseline.csv" ||
                    { echo "ember's count differs from the baseline's" >&2; exit 1; }
            fi
        done
    done
done

mkdir -p "$work/empty"
for i in $(seq -w 1 "$EMPTY"); do : >"$work/empty/e$i"; done
for mode in update complete; do
    rm -rf "$work/ek" "$work/ek.out"
    "$work/baseline" fsync "$work" 50 >"$work/disk.empty.$mode"
    run_ember "$mode" "$work/empty" "$work/ek" --max-files-per-trigger 1
    batch_seconds "$work/log" | median >"$work/empty.$mode"
done
# The same after the 32 MB run: new empty files sorting after its files.
for mode in update complete; do
    rm -rf "$work/ck" "$work/ck.out" "$work/src/"zz*
    run_ember "$mode" "$work/src" "$work/ck"
    for i in $(seq -w 1 "$EMPTY"); do : >"$work/src/zz$i"; done
    "$work/baseline" fsync "$work" 50 >"$work/disk.full.$mode"
    run_ember "$mode" "$work/src" "$work/ck" --max-files-per-trigger 1
    batch_seconds "$work/log" | median >"$work/full.$mode"
done

mb=$(echo "$bytes / 1000000" | bc -l)
printf 'data: %d files, %.1f MB, %d distinct words; %s threads; medians of %s runs; load average %s\n' \
    "$NFILES" "$mb" "$(wc -l <"$work/baseline.csv")" "$THREADS" "$RUNS" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
[ "$RUNS" -gt 0 ] || BATCH_FILES=""
[ "$RUNS" -gt 0 ] && base=$(median <"$work/base.s") &&
    printf 'baseline (1 thread)                    %7.3f s  %7.1f MB/s\n' "$base" "$(echo "$mb / $base" | bc -l)"
for b in $BATCH_FILES; do
    for mode in update complete; do
        s=$(median <"$work/$mode.$b.s")
        w=$(median <"$work/$mode.$b.wall")
        printf 'ember %-8s %5d files/batch batches %7.3f s  %7.1f MB/s  %.2fx the baseline' \
            "$mode" "$b" "$s" "$(echo "$mb / $s" | bc -l)" "$(echo "$base / $s" | bc -l)"
        printf ' (whole process %.3f s, %.2fx)\n' "$w" "$(echo "$base / $w" | bc -l)"
    done
done
for mode in update complete; do
    printf 'empty batch, %-8s empty state:        %6.2f ms (median of %s; disk commit %.2f ms)\n' \
        "$mode" "$(echo "$(cat "$work/empty.$mode") * 1000" | bc -l)" "$EMPTY" \
        "$(cat "$work/disk.empty.$mode")"
    printf 'empty batch, %-8s %d-word state: %6.2f ms (disk commit %.2f ms)\n' "$mode" \
        "$(wc -l <"$work/baseline.csv")" "$(echo "$(cat "$work/full.$mode") * 1000" | bc -l)" \
        "$(cat "$work/disk.full.$mode")"
done
