#!/usr/bin/env bash
# Exit status 2, at once and before any work, for every bad path, unreadable
# input or impossible parameter (issue 9); a clustered short option names
# the right argument; --quiet silences progress, never a warning.
set -uo pipefail
bin=${EMBER_BIN:?}
src=${EMBER_SRC:?}
work=$(mktemp -d)
trap 'chmod -R u+rwx "$work" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
fail() { echo "test_cli_exit_codes: FAIL: $*" >&2; exit 1; }

g=$src/data/karate.el
mkdir -p adir
touch afile
# expect2 DESCRIPTION ARGS...: exit 2, one line on stderr, no checkpoint
# written and no metrics line (nothing ran).
expect2() {
    local what=$1
    shift
    rm -rf ck m.jsonl
    "$@" > out.txt 2> err.txt
    local st=$?
    [ "$st" -eq 2 ] || fail "$what: exit $st, wanted 2: $(cat err.txt)"
    [ "$(wc -l < err.txt)" -eq 1 ] || fail "$what: wanted one line: $(cat err.txt)"
    ! ls ck/ckpt-*.h5 > /dev/null 2>&1 || fail "$what: a checkpoint was written"
    [ ! -s m.jsonl ] || fail "$what: iterations ran (metrics written)"
}
# A sealed graph file with one byte changed fails its checksum: bad input.
"$bin/ember-convert" "$g" sealed.h5 --quiet || fail "convert"
size=$(stat -c %s sealed.h5)
printf '\125' | dd of=sealed.h5 bs=1 seek=$((size - 100)) conv=notrunc 2> /dev/null
expect2 "a damaged graph file" "$bin/ember-pagerank" --input sealed.h5 --top 3
grep -q "sealed.h5" err.txt || fail "the message does not name the file: $(cat err.txt)"
grep -q "drop its seal: h5unjam -i FILE -u /dev/null -o COPY" err.txt ||
    fail "no word on an input edited on purpose: $(cat err.txt)"
pr=("$bin/ember-pagerank" --undirected --tolerance 0 --iterations 5 --checkpoint-dir ck
    --checkpoint-every 1)
expect2 "output is a directory" "${pr[@]}" --input "$g" --output adir
grep -q "adir" err.txt || fail "the message does not name adir: $(cat err.txt)"
expect2 "output in a missing directory" "${pr[@]}" --input "$g" --output no/such/r.h5
grep -q "no/such/r.h5" err.txt || fail "the message does not name the output: $(cat err.txt)"
expect2 "output naming a dataset" "${pr[@]}" --input "$g" --output r.h5:/ranks
grep -q -- "--output r.h5:/ranks" err.txt || fail "the message does not name --output: $(cat err.txt)"
expect2 "metrics in a missing directory" "${pr[@]}" --input "$g" --output r.csv \
    --metrics no/such/m.jsonl
[ ! -e r.csv ] || fail "metrics refused after the output was written"
expect2 "metrics is a directory" "${pr[@]}" --input "$g" --top 3 --metrics adir
expect2 "empty --checkpoint-dir" "$bin/ember-pagerank" --input "$g" --top 3 --checkpoint-dir ""
expect2 "checkpoint dir under a file" "$bin/ember-pagerank" --input "$g" --top 3 \
    --checkpoint-dir afile/ck
expect2 "input is a directory" "${pr[@]}" --input adir --top 3
expect2 "missing input" "${pr[@]}" --input no/such.el --top 3
mkfifo fifo.el
expect2 "input is a pipe" "${pr[@]}" --input fifo.el --top 3
grep -q -- "--input fifo.el: not a regular file" err.txt || fail "pipe: $(cat err.txt)"
expect2 "kmeans: missing input" "$bin/ember-kmeans" --input no/such.csv --k 3
expect2 "kmeans: missing --init file" "$bin/ember-kmeans" --input "$src/data/iris.csv" \
    --init no/such.csv
expect2 "kmeans: output is a directory" "$bin/ember-kmeans" --input "$src/data/iris.csv" \
    --k 3 --output adir
expect2 "cc: output in a missing directory" "$bin/ember-cc" --input "$g" --output no/cc.csv
# A checkpoint directory too long for a loop is refused before anything is
# made; one that is a link to nothing says so.
long=$(printf 'd%.0s' $(seq 1000))
expect2 "a 1000-byte checkpoint dir" "$bin/ember-pagerank" --input "$g" --checkpoint-dir "$long"
grep -q "1000 bytes long, more than the 960" err.txt || fail "long dir: $(cat err.txt)"
[ ! -e "$long" ] || fail "a refused checkpoint dir was made"
ln -s nowhere dangling
expect2 "a dangling link as checkpoint dir" "$bin/ember-pagerank" --input "$g" --checkpoint-dir dangling
grep -q "dangling: a symbolic link that leads to no directory (No such file" err.txt ||
    fail "dangling dir: $(cat err.txt)"
if [ "$(id -u)" -ne 0 ]; then
    cp "$g" secret.el
    chmod 000 secret.el
    expect2 "permission denied" "${pr[@]}" --input secret.el --top 3
    grep -qi "permission denied" err.txt || fail "no 'Permission denied': $(cat err.txt)"
fi
# (As root, which the test suite usually runs as, every file is readable:
# the permission case runs only for other users.)
# Outputs that would fail only at the end, after the work, are refused
# before it: a metrics file this user cannot append to, another user's file
# in a sticky directory (as /tmp is). Permissions bind other users only:
# as root the runs go through runuser as nobody, when it can run ours.
as_user=()
if [ "$(id -u)" -eq 0 ] && command -v runuser > /dev/null &&
    runuser -u nobody -- test -x "$bin/ember-pagerank" -a -r "$g" 2> /dev/null; then
    as_user=(runuser -u nobody --)
fi
if [ "$(id -u)" -ne 0 ] || [ ${#as_user[@]} -gt 0 ]; then
    sticky=$(mktemp -d)
    chmod 1777 "$sticky"
    echo '{}' > "$sticky/m.jsonl"
    chmod 444 "$sticky/m.jsonl"
    expect2 "metrics not writable" "${as_user[@]}" "$bin/ember-pagerank" --input "$g" \
        --metrics "$sticky/m.jsonl"
    grep -q "cannot append to it" err.txt || fail "metrics not writable: $(cat err.txt)"
    if [ "$(id -u)" -eq 0 ]; then # root's file, replaced by nobody
        echo old > "$sticky/r.csv"
        expect2 "sticky output" "${as_user[@]}" "$bin/ember-pagerank" --input "$g" \
            --output "$sticky/r.csv"
        grep -q "another user's file in a sticky directory" err.txt ||
            fail "sticky output: $(cat err.txt)"
    fi
    rm -rf "$sticky"
else
    echo "test_cli_exit_codes: runuser cannot run the build as nobody: the permission cases not checked"
fi
expect2 "blobs with more clusters than points" "$bin/ember-gen" blobs --n 10 --d 2 --k 20 \
    --output b.csv
[ ! -e b.csv ] || fail "blobs --n 10 --k 20 wrote a file"

expect2 "gen: output in a missing directory" "$bin/ember-gen" kron --scale 4 \
    --output no/such/k.el
expect2 "gen: output is a directory" "$bin/ember-gen" kron --scale 4 --output adir
expect2 "convert: output in a missing directory" "$bin/ember-convert" "$g" no/such/k.h5
grep -q "vertices" err.txt && fail "convert loaded the graph before refusing its output"

# A clustered short option names the letter, not the next argument.
expect2 "clustered short options" "$bin/ember-pagerank" -xyz o.h5
grep -q "'-x'" err.txt || fail "-xyz: the message does not name -x: $(cat err.txt)"
grep -q "o.h5" err.txt && fail "-xyz: the message names o.h5: $(cat err.txt)"

# --quiet keeps warnings: a damaged newest checkpoint is skipped, and said so.
rm -rf ck
"${pr[@]}" --input "$g" --top 1 --quiet > /dev/null || fail "checkpointed run"
newest=$(ls ck/ckpt-*.h5 | tail -n 1)
head -c 100 "$newest" > t && mv t "$newest"
"${pr[@]}" --input "$g" --top 1 --iterations 7 --quiet > /dev/null 2> err.txt \
    || fail "resume past a damaged checkpoint: $(cat err.txt)"
grep -q "$(basename "$newest")" err.txt \
    || fail "--quiet silenced the warning about $(basename "$newest"): '$(cat err.txt)'"
grep -q "iteration " err.txt && fail "--quiet printed progress: $(cat err.txt)"
# A directory where the checkpoint directory's lock file goes: named as
# such (it used to say the directory "is not writable", exit 1).
mkdir -p lockdir/ember.lock
expect2 "the lock file is a directory" "$bin/ember-pagerank" --input "$g" --iterations 2 \
    --checkpoint-dir lockdir
grep -q "lockdir/ember.lock is a directory" err.txt || fail "lock: $(cat err.txt)"
# An output over a device or a pipe would be replaced by a regular file
# (as root, -o /dev/null made /dev/null one); an output that is the
# checkpoint directory, or a checkpoint's name in it, would destroy it.
mkfifo apipe
expect2 "output is a pipe" "$bin/ember-pagerank" --input "$g" --output apipe
grep -q "apipe: not a regular file (a pipe)" err.txt || fail "pipe: $(cat err.txt)"
[ -p apipe ] || fail "the pipe was replaced"
expect2 "output is a device" "$bin/ember-pagerank" --input "$g" --output /dev/null
[ -c /dev/null ] || fail "/dev/null is no longer a device"
expect2 "output is the checkpoint dir" "${pr[@]}" --input "$g" --output ck
grep -q "is --checkpoint-dir ck" err.txt || fail "ck: $(cat err.txt)"
mkdir -p ck2
expect2 "metrics over a checkpoint" "$bin/ember-pagerank" --input "$g" --checkpoint-dir ck2 \
    --metrics ck2/ckpt-000000000003.h5
grep -q "replace and delete in --checkpoint-dir ck2" err.txt || fail "metrics: $(cat err.txt)"
mkdir -p ck && "${pr[@]}" --input "$g" --output ck/r.h5 --quiet > /dev/null || fail "an output beside the checkpoints"
# FILE:name for FILE:/name: the message says which was meant.
expect2 "a dataset named without its slash" "$bin/ember-kmeans" --input sealed.h5:csr --k 2
grep -q "sealed.h5 is one: a dataset in it is named with a leading slash, sealed.h5:/csr" \
    err.txt || fail "FILE:name: $(cat err.txt)"
# An input named as a checkpoint in --checkpoint-dir: retention would delete it.
mkdir -p ck3 && cp "$g" ck3/ckpt-000000000001.h5
expect2 "input named as a checkpoint" "$bin/ember-pagerank" --input ck3/ckpt-000000000001.h5 \
    --format el --checkpoint-dir ck3
[ -f ck3/ckpt-000000000001.h5 ] || fail "the input was deleted"
# A finished run's state of another graph, forced: refused, not read past
# its end (ember-cc printed labels of heap memory, exit 0).
rm -rf ckf && "$bin/ember-cc" --input "$g" --checkpoint-dir ckf --quiet > /dev/null
"$bin/ember-gen" kron --scale 8 --seed 3 --output k8.h5 --quiet 2> /dev/null
"$bin/ember-cc" --input k8.h5 --checkpoint-dir ckf --force-resume --quiet > out.txt 2> err.txt
st=$?
[ "$st" -eq 2 ] && grep -q "the checkpoint holds 34 labels, the graph has" err.txt ||
    fail "cc forced onto another graph: exit $st: $(cat out.txt err.txt)"
# Results that cannot be printed are a failure (exit 1), not a success.
"$bin/ember-pagerank" --input "$g" --top 3 --quiet > /dev/full 2> err.txt
st=$?
[ "$st" -eq 1 ] || fail "stdout on a full disk: exit $st: $(cat err.txt)"
grep -q "cannot write the standard output" err.txt || fail "full: $(cat err.txt)"
# The same for the tools whose result is what they print: ember-inspect's
# report (a script's `ember-inspect ck > state.txt && ...`) and ember-gen's
# summary.
for cmd in "ember-inspect ckf" "ember-inspect --json k8.h5" \
           "ember-gen kron --scale 4 --seed 1 --output k4.el"; do
    "$bin"/$cmd > /dev/full 2> err.txt
    st=$?
    [ "$st" -eq 1 ] && grep -q "cannot write the standard output" err.txt ||
        fail "$cmd > /dev/full: exit $st: $(cat err.txt)"
done
# The serial build started by an MPI launcher: each process runs a whole
# job of its own, which a sweep means (srun -n 8 wrapper.sh, each with its
# own arguments) and one command under mpirun does not: a warning, which
# names the variable; none from a tool, none for one process.
"$bin/ember-pagerank" --version > out.txt || fail "--version"
if grep -q "serial build" out.txt; then
    for var in OMPI_COMM_WORLD_SIZE=2 PMI_SIZE=3 SLURM_STEP_NUM_TASKS=4; do
        rm -rf ck
        env "$var" "${pr[@]}" --input "$g" --output launched.csv --quiet > out.txt \
            2> err.txt || fail "the serial build under $var: $(cat err.txt)"
        grep -q "warning: this is the serial build, started as one of ${var#*=} processes by an MPI launcher ($var)" \
            err.txt || fail "$var: $(cat err.txt)"
        [ -s launched.csv ] || fail "$var: no output"
    done
    env SLURM_STEP_NUM_TASKS=4 "$bin/ember-gen" kron --scale 4 --output t4.el \
        > /dev/null 2> err.txt || fail "ember-gen under a launcher: $(cat err.txt)"
    grep -q "serial build" err.txt && fail "a tool warned of the launcher: $(cat err.txt)"
    rm -rf ck
    env OMPI_COMM_WORLD_SIZE=1 "${pr[@]}" --input "$g" --output launched.csv --quiet \
        > /dev/null 2> err.txt || fail "the serial build under mpirun -n 1"
    grep -q "serial build" err.txt && fail "a warning for one process: $(cat err.txt)"
else
    grep -q "MPI build" out.txt || fail "--version names no build: $(cat out.txt)"
fi
echo "exit codes: ok"
