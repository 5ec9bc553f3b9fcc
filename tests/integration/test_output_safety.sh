#!/usr/bin/env bash
# Outputs never destroy inputs or each other, and appear whole or not at
# all:
#   - an --output or --metrics that is an input (by any name: ./x, a
#     symlink) exits 2 and leaves it alone; two flags naming one file
#     (k-means' X.centroids.csv included) exit 2; an input named like a
#     temporary (x.tmp for --output x) is left alone;
#   - two runs writing one output at once both finish, and the output is
#     whole: one of theirs (each writes a temporary of its own);
#   - a program stopped while writing its output (here by the file size
#     limit, SIGXFSZ, which lands in the middle of the write every time)
#     leaves the previous output as it was, for every program that writes
#     one (pagerank, cc, sssp, kmeans, convert, gen); k-means' labels and
#     centroids files as a pair;
#   - a tool ended by SIGTERM while it writes leaves no temporary; one
#     killed with SIGKILL (or SIGXFSZ) leaves it, and the next run writing
#     that output removes it (a live writer's and another host's stay);
#   - an output that is a symbolic link is written through it.
set -uo pipefail
bin=${EMBER_BIN:?}
src=${EMBER_SRC:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "test_output_safety: FAIL: $*" >&2; exit 1; }

"$bin/ember-gen" kron --scale 12 --seed 3 --output g.el --quiet || fail "gen g.el"
"$bin/ember-gen" kron --scale 12 --seed 3 --weighted --output w.el --quiet || fail "gen w.el"
"$bin/ember-gen" blobs --n 3000 --d 4 --k 3 --seed 2 --output p.csv --quiet || fail "gen p.csv"
cp g.el g.orig
cp p.csv p.orig

# refused NAME ARGS...: exit 2, a message naming `clash`, inputs unchanged
refused() {
    local what=$1 clash=$2
    shift 2
    "$@" > out.txt 2> err.txt
    local st=$?
    [ "$st" -eq 2 ] || fail "$what: exit $st, wanted 2: $(cat err.txt)"
    grep -q -- "$clash" err.txt || fail "$what: the message does not say '$clash': $(cat err.txt)"
    cmp -s g.el g.orig || fail "$what: g.el was changed"
    cmp -s p.csv p.orig || fail "$what: p.csv was changed"
}
pr=("$bin/ember-pagerank" --iterations 3 --quiet)
refused "--output is the input" "is the input file" "${pr[@]}" --input g.el --output g.el
refused "--output is ./input" "is the input file" "${pr[@]}" --input g.el --output ./g.el
ln -s g.el link.el
refused "--output is the input through a symlink" "is the input file" \
    "${pr[@]}" --input link.el --output g.el
refused "--metrics is the input" "is the input file" "${pr[@]}" --input g.el --metrics g.el
refused "--output and --metrics one file" "the same file as --output" \
    "${pr[@]}" --input g.el --output r.h5 --metrics r.h5
refused "--metrics through another path" "the same file as --output" \
    "${pr[@]}" --input g.el --output r.h5 --metrics "$work/r.h5"
cp g.el x.tmp
cp g.el g.orig2
"${pr[@]}" --input x.tmp --output x > /dev/null 2> err.txt || fail "--input x.tmp --output x: $(cat err.txt)"
cmp -s x.tmp g.orig2 || fail "x.tmp (the input) was changed"
[ -s x ] || fail "--input x.tmp --output x wrote no x"
refused "ember-cc --output is the input" "is the input file" \
    "$bin/ember-cc" --input g.el --output g.el --quiet
refused "ember-kmeans --output is the input" "is the input file" \
    "$bin/ember-kmeans" --input p.csv --k 3 --output p.csv --quiet
refused "ember-kmeans centroids file is --metrics" "the same file as --metrics" \
    "$bin/ember-kmeans" --input p.csv --k 3 --output k.csv --metrics k.centroids.csv --quiet
"$bin/ember-convert" g.el g.h5 --quiet > /dev/null || fail "convert g.el"
cp g.h5 gh.orig
refused "ember-convert OUT is IN" "is the input file" "$bin/ember-convert" g.h5 g.h5 --quiet
cmp -s g.h5 gh.orig || fail "ember-convert g.h5 g.h5 changed g.h5"
[ ! -e r.h5 ] && [ ! -e k.csv ] || fail "a refused run wrote an output"

# Each program's output, written whole first, then again with a file size
# limit that stops it in the middle of the write: the first one must
# still be there, byte for byte.
# interrupted NAME OUT ARGS...: ARGS writes OUT (complete); the same run
# under `ulimit -f 8` (8 KiB) is killed by SIGXFSZ; OUT is unchanged.
interrupted() {
    local what=$1 out=$2
    shift 2
    rm -f "$out"
    "$@" > /dev/null 2> err.txt || fail "$what: the first run failed: $(cat err.txt)"
    [ "$(stat -c %s "$out")" -gt 16384 ] || fail "$what: $out is too small for the test"
    cp "$out" good
    # (the group's 2> also takes the shell's own "File size limit exceeded")
    { (ulimit -f 8; exec "$@") > /dev/null; } 2> /dev/null
    local st=$?
    [ "$st" -ne 0 ] || fail "$what: the limited run succeeded (the limit did not bite)"
    cmp -s "$out" good || fail "$what: $out changed by a run stopped while writing it (exit $st)"
    # killed, it left its temporary, which the next run writing OUT removes
    ls "$out".*.tmp > /dev/null 2>&1 || fail "$what: the killed run left no temporary"
    # the same limit as a full disk (SIGXFSZ ignored: the write fails with
    # EFBIG): exit 1, a message that gives the reason, OUT unchanged
    (trap '' XFSZ; ulimit -f 8; exec "$@") > /dev/null 2> err.txt
    st=$?
    [ "$st" -eq 1 ] && grep -q "File too large" err.txt ||
        fail "$what: a full disk: exit $st, the reason not given: $(cat err.txt)"
    cmp -s "$out" good || fail "$what: $out changed by a run that could not write it"
    ! ls "$out".*.tmp 2> /dev/null || fail "$what: the killed run's temporary is still there"
}
interrupted "pagerank csv" r.csv "${pr[@]}" --input g.el --output r.csv
interrupted "pagerank h5" r.h5 "${pr[@]}" --input g.el --output r.h5
interrupted "cc" c.csv "$bin/ember-cc" --input g.el --output c.csv --quiet
interrupted "sssp" s.h5 "$bin/ember-sssp" --input w.el --source 0 --output s.h5 --quiet
interrupted "kmeans csv" k.csv "$bin/ember-kmeans" --input p.csv --k 3 --output k.csv --quiet
[ -s k.centroids.csv ] || fail "kmeans: no centroids file"
# the pair: another result stopped while writing its labels leaves both
# files of the previous one (its centroids were renamed in first, next to
# the old labels)
cp k.csv k.good
cp k.centroids.csv kc.good
for limit in "" "trap '' XFSZ;"; do
    (eval "$limit"; ulimit -f 8; exec "$bin/ember-kmeans" --input p.csv --k 4 --output k.csv \
        --quiet) > /dev/null 2>&1 && fail "kmeans pair: the limit did not bite"
    cmp -s k.csv k.good && cmp -s k.centroids.csv kc.good ||
        fail "kmeans pair: a run stopped while writing left another pair ($limit)"
done
interrupted "kmeans h5" k.h5 "$bin/ember-kmeans" --input p.csv --k 3 --output k.h5 --quiet
interrupted "convert" c.h5 "$bin/ember-convert" g.el c.h5 --quiet
interrupted "gen kron el" k.el "$bin/ember-gen" kron --scale 11 --seed 1 --output k.el --quiet
interrupted "gen kron h5" k2.h5 "$bin/ember-gen" kron --scale 11 --seed 1 --output k2.h5 --quiet
interrupted "gen blobs csv" b.csv "$bin/ember-gen" blobs --n 3000 --d 4 --k 3 --output b.csv --quiet
# SIGTERM while a tool writes its output (the default action: the process
# ends, exit 143) takes the temporary with it: ember-gen left one of the
# output's size each time.
landed=0
for attempt in 1 2 3 4 5 6; do
    "$bin/ember-gen" kron --scale 19 --seed "$attempt" --output big.el --quiet & p=$!
    for _ in $(seq 500); do
        ls big.el.*.tmp > /dev/null 2>&1 && break
        sleep 0.01
    done
    kill -TERM "$p" 2> /dev/null
    wait "$p"
    st=$?
    ls big.el.*.tmp > /dev/null 2>&1 && fail "SIGTERM left $(ls big.el.*.tmp) (exit $st)"
    [ "$st" -eq 143 ] && landed=$((landed + 1))
    [ "$landed" -ge 2 ] && break
done
[ "$landed" -ge 1 ] || fail "no SIGTERM landed while ember-gen wrote"
rm -f big.el
# SIGKILL while a tool writes leaves its temporary, which the next run
# writing that output on this host removes: its pid is a dead process's.
# A live writer's (stopped, mid-write) stays, and so does one of another
# host's tag; both names are ember's.
# started_writing SEED: starts ember-gen writing big.el in the background
# (pid in $p) and waits for its temporary, whose name is then in $t: the
# one with its pid that has data (not its empty probe; and not another
# writer's, which a stopped process could create after its stop was sent)
started_writing() {
    "$bin/ember-gen" kron --scale 19 --seed "$1" --output big.el --quiet & p=$!
    t=""
    for _ in $(seq 500); do
        t=$(find . -maxdepth 1 -name "big.el.????????$(printf %08x "$p")????.tmp" -size +0 \
            2> /dev/null | head -1)
        [ -n "$t" ] && { t=${t#./}; return 0; }
        sleep 0.01
    done
    fail "ember-gen wrote no temporary"
}
started_writing 1
kill -STOP "$p"
stopped=$p live=$t
trap 'kill -KILL $stopped 2> /dev/null; rm -rf "$work"' EXIT
started_writing 2
kill -KILL "$p"
wait "$p" 2> /dev/null
dead=$t
[ -f "$dead" ] || fail "SIGKILL left no temporary to test with"
other=$(echo "$dead" | sed 's/\.\([0-9a-f]\{8\}\)\([0-9a-f]\{12\}\)\.tmp$/.\2\1.tmp/')
[ "$other" != "$dead" ] || fail "the temporary's name is not NAME.<20 hex>.tmp: $dead"
cp "$dead" "$other" # another host's tag (the digits moved about)
"$bin/ember-gen" kron --scale 11 --seed 1 --output big.el --quiet || fail "the run after a SIGKILL"
[ -f "$dead" ] && fail "the next run left the temporary of a process killed with SIGKILL"
[ -f "$live" ] || fail "the next run removed a live (stopped) writer's temporary"
[ -f "$other" ] || fail "the next run removed a temporary of another host's tag"
kill -KILL "$stopped"
wait "$stopped" 2> /dev/null
rm -f big.el big.el.*.tmp
# An output that is a symbolic link is written through it (the link
# stays, its target gets the result), a dangling one too.
mkdir -p proj
"${pr[@]}" --input g.el --output proj/r.csv > /dev/null || fail "an output to link to"
cp proj/r.csv r.old
ln -s "$work/proj/r.csv" linked.csv
ln -s proj/new.csv dangling.csv
"${pr[@]}" --iterations 4 --input g.el --output linked.csv > /dev/null || fail "--output a link"
"${pr[@]}" --iterations 4 --input g.el --output dangling.csv > /dev/null || fail "--output a dangling link"
[ -L linked.csv ] && [ -L dangling.csv ] || fail "an output replaced its link"
cmp -s proj/r.csv r.old && fail "the link's target kept the previous result"
cmp -s proj/r.csv proj/new.csv || fail "the dangling link's target is not the result"
# A name of up to 255 bytes is an output's like any other (its temporary
# takes the name's first bytes): a 250-byte one was refused, too long with
# the temporary's suffix.
long=$(printf 'r%.0s' $(seq 250)).csv
"${pr[@]}" --input g.el --output "$long" > /dev/null 2> err.txt || fail "a 254-byte name: $(cat err.txt)"
[ -s "$long" ] || fail "no output under a 254-byte name"
rm -f "$long"
# a complete run leaves no temporary
"${pr[@]}" --input g.el --output r.csv > /dev/null || fail "the run after an interrupted one"
! ls r.csv.*.tmp 2> /dev/null || fail "a complete run left a temporary"

# Two runs of other inputs writing one output at once: both exit 0 and the
# output is one of theirs, whole (with one NAME.tmp they wrote into one
# file: a mix of both, or one run's rename took the other's file).
# (scale 14: the old shared NAME.tmp failed about half the trials there)
"$bin/ember-gen" kron --scale 14 --edge-factor 8 --seed 3 --output r1.el --quiet || fail "gen r1.el"
"$bin/ember-gen" kron --scale 14 --edge-factor 8 --seed 4 --output r2.el --quiet || fail "gen r2.el"
"${pr[@]}" --input r1.el --output refA.csv > /dev/null || fail "reference A"
"${pr[@]}" --input r2.el --output refB.csv > /dev/null || fail "reference B"
for trial in 1 2 3 4 5 6; do
    rm -f race.csv
    "${pr[@]}" --input r1.el --output race.csv > /dev/null 2> errA.txt & a=$!
    "${pr[@]}" --input r2.el --output race.csv > /dev/null 2> errB.txt & b=$!
    wait $a || fail "race $trial: run A failed: $(cat errA.txt)"
    wait $b || fail "race $trial: run B failed: $(cat errB.txt)"
    cmp -s race.csv refA.csv || cmp -s race.csv refB.csv \
        || fail "race $trial: the output is neither run's ($(wc -l < race.csv) lines)"
done
echo "test_output_safety: ok"
