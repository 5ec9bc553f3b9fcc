#!/usr/bin/env bash
# The metrics mark exactly the iterations whose checkpoint files were
# committed, each with its file's size: in the background mode (the
# default), where a file commits some iterations after the one it holds,
# with --checkpoint-sync, and when a signal (--stop-at) writes one while
# another is in flight (two commits seen at once). No checkpoint is
# retired here (--keep 20), so every committed file is still there.
set -euo pipefail
bin=${EMBER_BIN:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

"$bin/ember-gen" kron --scale 12 --edge-factor 16 --seed 3 --output g.h5 --quiet

# "iteration bytes" for each marked line, and for each file
marked() {
    sed -n 's/^{"iteration": \([0-9]*\),.*"checkpoint": true, "checkpoint_bytes": \([0-9]*\)}$/\1 \2/p' m.jsonl
}
files() {
    for f in ck/ckpt-*.h5; do
        n=${f#ck/ckpt-}
        n=${n%.h5}
        echo "$((10#$n)) $(stat -c %s "$f")"
    done
}

check() { # mode args...
    local mode=$1
    shift
    rm -rf ck m.jsonl
    set +e
    "$bin/ember-pagerank" --input g.h5 --iterations 12 --tolerance 0 --quiet \
        --output o.csv --checkpoint-dir ck --checkpoint-every 4 --keep 20 \
        --metrics m.jsonl "$@"
    st=$?
    set -e
    [ $st -eq 0 ] || [ $st -eq 75 ] || fail "$mode: exit $st"
    local want got
    want=$(files)
    got=$(marked)
    [ -n "$want" ] || fail "$mode: no checkpoint files"
    [ "$got" = "$want" ] ||
        fail "$mode: metrics mark [$(echo $got)], files are [$(echo $want)]"
}

check background
[ "$(marked | cut -d' ' -f1 | paste -sd' ')" = "4 8 12" ] || fail "background: $(marked)"
check sync --checkpoint-sync
check signal --stop-at 6
[ "$(marked | cut -d' ' -f1 | paste -sd' ')" = "4 6" ] || fail "signal: $(marked)"
[ "$(grep -c '"iteration"' m.jsonl)" -eq 6 ] || fail "signal: lines lost"

# A metrics file that cannot be written (the disk full: ulimit -f, SIGXFSZ
# ignored) is said once on stderr, and the run goes on to its result.
set +e
bash -c 'trap "" XFSZ; ulimit -f 1; exec "$@"' maps "$bin/ember-maps" --n 100 --maps 200 \
    --metrics full.jsonl --quiet > out.txt 2> err.txt
st=$?
set -e
[ "$st" -eq 0 ] && grep -qx 'count: 100' out.txt || fail "metrics on a full disk: exit $st: $(cat err.txt)"
[ "$(grep -c 'metrics full.jsonl: a write failed (File too large)' err.txt)" -eq 1 ] ||
    fail "metrics on a full disk: $(cat err.txt)"
# A resume after a line a kill or a full disk cut drops that half line:
# the next line starts on its own, every line is whole, and the file plots
lines_ok() { # every line a JSON object that ends
    awk '!/^\{.*\}$/ { bad = 1; print "line " NR ": " $0 > "/dev/stderr" } END { exit bad }' "$1"
}
rm -rf ck m.jsonl
"$bin/ember-maps" --n 1000 --maps 20 --checkpoint-dir ck --checkpoint-every 5 --stop-at 10 \
    --metrics m.jsonl --quiet > /dev/null 2>&1 || [ $? -eq 75 ] || fail "--stop-at 10"
before=$(wc -l < m.jsonl)
truncate -s -7 m.jsonl
"$bin/ember-maps" --n 1000 --maps 20 --checkpoint-dir ck --metrics m.jsonl --quiet > /dev/null
[ "$(grep -c '^{"event": "resumed", "from_iteration": 10}$' m.jsonl)" -eq 1 ] ||
    fail "the resumed line after a cut one: $(tail -n 12 m.jsonl)"
lines_ok m.jsonl || fail "a cut line stayed in m.jsonl"
[ "$(head -n $((before - 1)) m.jsonl | wc -l)" -eq $((before - 1)) ] || fail "whole lines lost"
if command -v gnuplot > /dev/null; then
    "$bin/ember-inspect" --plot m.jsonl -o m.svg 2> err.txt || fail "the resumed metrics do not plot: $(cat err.txt)"
fi

# A kill after a background checkpoint committed and before its held
# lines were written left the file without that iteration's line: the
# resume writes the missing lines, up to the checkpoint's, from its
# history, with the values an uninterrupted run's lines have.
residuals() { sed -n 's/^{"iteration": \([0-9]*\), "seconds": [^,]*, "residual": \([^,]*\),.*/\1 \2/p' "$1"; }
rm -rf ck m.jsonl
"$bin/ember-pagerank" --input g.h5 --iterations 12 --tolerance 0 --quiet --metrics whole.jsonl \
    > /dev/null
"$bin/ember-pagerank" --input g.h5 --iterations 12 --tolerance 0 --quiet --checkpoint-dir ck \
    --checkpoint-every 4 --stop-at 8 --metrics m.jsonl > /dev/null 2>&1 ||
    [ $? -eq 75 ] || fail "--stop-at 8"
sed -i '/^{"iteration": [67],/,$d' m.jsonl # the lines of 6 on lost
"$bin/ember-pagerank" --input g.h5 --iterations 12 --tolerance 0 --quiet --checkpoint-dir ck \
    --metrics m.jsonl > /dev/null
[ "$(residuals m.jsonl)" = "$(residuals whole.jsonl)" ] ||
    fail "the resumed metrics' iterations: $(residuals m.jsonl | paste -sd' ')"
[ "$(grep -n '"event": "resumed"' m.jsonl | cut -d: -f1)" = 9 ] ||
    fail "the resumed line is not after iteration 8's: $(cat m.jsonl)"
grep -qx '{"iteration": 8, .*"checkpoint": true, "checkpoint_bytes": '"$(stat -c %s ck/ckpt-000000000008.h5)"'}' m.jsonl ||
    fail "iteration 8's line does not mark its checkpoint: $(grep '"iteration": 8,' m.jsonl)"
lines_ok m.jsonl || fail "the backfilled m.jsonl"

# Past 1,024 iterations the history is thinned: the checkpoint's own line
# is written even when its row is gone (its seconds null).
rm -rf ck m.jsonl
"$bin/ember-maps" --n 100 --maps 2100 --checkpoint-dir ck --stop-at 2051 --metrics m.jsonl \
    --quiet > /dev/null 2>&1 || [ $? -eq 75 ] || fail "--stop-at 2051"
sed -i '/^{"iteration": 2049,/,$d' m.jsonl
"$bin/ember-maps" --n 100 --maps 2100 --checkpoint-dir ck --metrics m.jsonl --quiet > /dev/null
grep -qx '{"iteration": 2051, "seconds": null, .*"checkpoint": true, "checkpoint_bytes": [1-9][0-9]*}' \
    m.jsonl || fail "the thinned checkpoint's line: $(grep -A1 '"iteration": 2048,' m.jsonl)"
[ "$(grep -A1 '"iteration": 2051,' m.jsonl | tail -1)" = \
  '{"event": "resumed", "from_iteration": 2051}' ] || fail "no resumed line after 2051's"
lines_ok m.jsonl || fail "the thinned backfill"

# Metrics to this process's stderr or stdout (a terminal, a pipe, or the
# file a log goes to) go through that descriptor: a log appended to keeps
# what it held, and the program's own lines and the metrics' do not write
# over each other (a second open truncated the log, at its own offset).
printf 'kept\n' > log.txt
"$bin/ember-pagerank" --input g.h5 --iterations 3 --tolerance 0 --metrics /dev/stderr \
    > /dev/null 2>> log.txt || fail "--metrics /dev/stderr: $(cat log.txt)"
[ "$(head -n 1 log.txt)" = kept ] || fail "--metrics /dev/stderr truncated the log: $(cat log.txt)"
[ "$(grep -c '^{"iteration": [123], .*}$' log.txt)" -eq 3 ] &&
    grep -q '^ember-pagerank: load' log.txt || fail "--metrics /dev/stderr: $(cat log.txt)"
"$bin/ember-pagerank" --input g.h5 --iterations 3 --tolerance 0 --quiet --metrics /dev/stdout \
    > out.txt 2> /dev/null || fail "--metrics /dev/stdout"
[ "$(grep -c '^{"iteration": [123], .*}$' out.txt)" -eq 3 ] &&
    grep -q '^ember-pagerank: 4096 vertices' out.txt || fail "--metrics /dev/stdout: $(cat out.txt)"
# A named pipe streams to its reader; with none, the run stops at once.
mkfifo m.pipe
cat m.pipe > piped.txt &
reader=$!
"$bin/ember-pagerank" --input g.h5 --iterations 3 --tolerance 0 --quiet --metrics m.pipe \
    > /dev/null 2> err.txt || fail "--metrics m.pipe: $(cat err.txt)"
wait "$reader"
[ "$(grep -c '^{"iteration": ' piped.txt)" -eq 3 ] || fail "--metrics m.pipe: $(cat piped.txt)"
st=0
timeout 60 "$bin/ember-pagerank" --input g.h5 --iterations 3 --tolerance 0 --quiet \
    --metrics m.pipe > /dev/null 2> err.txt || st=$?
[ "$st" -ne 0 ] && [ "$st" -ne 124 ] && grep -q "a named pipe that no process reads" err.txt ||
    fail "--metrics m.pipe with no reader: exit $st: $(cat err.txt)"
echo "metrics checkpoints: ok"
