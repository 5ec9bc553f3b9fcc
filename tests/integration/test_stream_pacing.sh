#!/usr/bin/env bash
# test_stream_pacing.sh: the processing-time trigger.
#
# With processing-time=1s and a file arriving every ~0.25 s, batches start
# on a one-second grid: each starts no earlier than the first grid point
# after the previous batch's start (consecutive starts a second apart, less
# after a batch that a busy machine started late) and the run makes
# progress. Then a batch made slow on purpose (a big backlog, interval
# 0.2 s) overruns its interval and must be followed at once: the next batch
# starts well before a full interval after it ended would allow waiting.
# Only lower bounds and generous upper bounds are checked.
set -euo pipefail
. "$(dirname "$0")/test_stream_lib.sh"

T=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$T"' EXIT
mkdir -p "$T/src"

"$WC" --source "$T/src" --checkpoint-location "$T/ck" --sink "$T/out" \
    --trigger processing-time=1s 2>"$T/log" &
PID=$!
for i in $(seq 1 18); do
    make_file "$T/src" "$(printf 'p%03d' "$i")" "$i" 200
    sleep 0.25
done
kill -TERM "$PID"
rc=0
wait "$PID" || rc=$?
[ "$rc" -eq 75 ] || fail "exit $rc after SIGTERM, not 75"
starts=$(sed -n 's/.*(at \([0-9.]*\) s).*/\1/p' "$T/log")
n=$(echo "$starts" | grep -c . || true)
[ "$n" -ge 3 ] || fail "only $n batches in ~4.5 s: $(cat "$T/log")"
# On the grid (the times are from the stream's start, where the grid
# begins): a batch starts no earlier than the first grid point after the
# one before it began. A batch that began late (a busy machine wakes the
# stream late) leaves the next one less than a second, as the grid says:
# a fixed bound on the gap between starts would fail there.
echo "$starts" | awk '
    NR > 1 && $1 < int(prev) + 1 - 0.0005 {
        printf "batch at %.3f s, before the grid point after the batch at %.3f s\n", $1, prev
        bad = 1
    }
    { prev = $1 }
    END { exit bad }' || fail "batches closer than the interval allows"
# How late this machine wakes the stream now: each batch after the first
# waited for its grid point, and began this long after it (a few ms on an
# idle machine). The overrun check below allows as much again.
late=$(echo "$starts" | awk 'NR > 1 { l = $1 - int($1); if (l > m) m = l } END { printf "%.3f", m }')

# An overrunning batch is followed at once: 64 MB files, one a batch, on
# one thread, take longer than a 0.25 s interval; waiting for the next
# interval after the end would leave a gap of up to 0.25 s.
mkdir -p "$T/big"
for i in 1 2; do
    { yes "alpha beta gamma delta epsilon zeta eta theta $i" || true; } | head -c 64M >"$T/big/.q$i"
    mv "$T/big/.q$i" "$T/big/q$i"
done
"$WC" --source "$T/big" --checkpoint-location "$T/ck2" --sink "$T/out2" --threads 1 \
    --max-files-per-trigger 1 --trigger processing-time=0.25s 2>"$T/log2" &
PID=$!
for _ in $(seq 600); do [ "$(ls "$T/out2" 2>/dev/null | wc -l)" -ge 2 ] && break; sleep 0.05; done
kill -TERM "$PID"
wait "$PID" || true
rm -rf "$T/big"
sed -n 's/.*, \([0-9.]*\) s (at \([0-9.]*\) s).*/\1 \2/p' "$T/log2" | awk -v late="$late" '
    { secs[NR] = $1; at[NR] = $2; n = NR }
    END {
        if (n < 2) { print "fewer than two batches"; exit 1 }
        for (i = 1; i < n; i++) {
            if (secs[i] <= 0.3) continue  # no overrun
            checked++
            gap = at[i + 1] - (at[i] + secs[i])
            if (gap > 0.12 + late) {
                printf "after an overrun the next batch waited %.3f s (wake-ups %.3f s late)\n", gap, late
                exit 1
            }
        }
        if (!checked) print "note: no batch overran its interval; nothing to check"
        else printf "overrun: next batch %.3f s after the end\n", gap
    }' || fail "overrun: $(cat "$T/log2")"
echo "test_stream_pacing: $n batches at a 1 s interval: PASS"
