#!/usr/bin/env bash
# test_loop_baddir: checkpoint directories that cannot work, and a
# checkpoint that is not ours.
#  1. The directory is a regular file, or lies under one: a clear error
#     naming it, exit 1, before any work.
#  2. The disk fills during a write (ulimit -f, SIGXFSZ ignored so a write
#     fails with EFBIG rather than killing the process): a clear error, exit
#     1, the earlier checkpoints intact, no .tmp left; the same run without
#     the limit then resumes and finishes with the right result.
#  2c. The directory is removed under a running job: exit 1, and the message
#     does not call the checkpoint that went with it intact.
#  3. A checkpoint written with other parameters, or by another program,
#     copied into a directory: refused with the difference listed, unless
#     --force-resume.
set -uo pipefail

: "${EMBER_BIN:?EMBER_BIN must point at the bin directory of a build}"
demo=$EMBER_BIN/ember-loopdemo
[ -x "$demo" ] || { echo "test_loop_baddir: FAIL: no $demo" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-loopbad.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_loop_baddir: FAIL: $*" >&2; exit 1; }

# expect_fail NAME WANT_TEXT -- command...: exit 1 and WANT_TEXT on stderr.
expect_fail() {
    local name=$1 want=$2
    shift 3
    "$@" >"$tmp/out" 2>"$tmp/err"
    local st=$?
    [ "$st" = 1 ] || { cat "$tmp/err" >&2; fail "$name: exit status $st, want 1"; }
    # A sanitizer build exits 1 on a crash too: that is no clean error.
    ! grep -qE "Sanitizer|DEADLYSIGNAL|runtime error:" "$tmp/err" \
        || { cat "$tmp/err" >&2; fail "$name: crashed"; }
    grep -qF -- "$want" "$tmp/err" || fail "$name: stderr lacks '$want': $(cat "$tmp/err")"
    grep -q '^result' "$tmp/out" && fail "$name: printed a result"
    echo "$name: $(tail -n 1 "$tmp/err")"
}

small=(--n 150000 --partitions 8)

# ---- 1. not a directory
touch "$tmp/file"
expect_fail "dir is a file" "checkpoint dir $tmp/file is not a directory" -- \
    "$demo" "${small[@]}" --iterations 3 --checkpoint-dir "$tmp/file"
expect_fail "dir under a file" "checkpoint dir $tmp/file/sub: Not a directory" -- \
    "$demo" "${small[@]}" --iterations 3 --checkpoint-dir "$tmp/file/sub"

# ---- 2. the disk fills during a write
ref=$("$demo" "${small[@]}" --iterations 12 --quiet | tail -n 1) || fail "reference run failed"
full=$tmp/full
"$demo" "${small[@]}" --iterations 6 --checkpoint-dir "$full" --checkpoint-every 2 \
    --quiet >/dev/null || fail "the first 6 iterations failed"
ls "$full"/ckpt-000000000004.h5 "$full"/ckpt-000000000006.h5 >/dev/null \
    || fail "want checkpoints 4 and 6: $(ls "$full")"
before=$(cd "$full" && cksum ckpt-*.h5)
# A checkpoint of 150000 f64 is over 1 MiB: a 512 KiB limit fails it.
expect_fail "disk full" "ckpt-000000000008.h5" -- \
    bash -c 'trap "" XFSZ; ulimit -f 512; exec "$@"' demo \
    "$demo" "${small[@]}" --iterations 12 --checkpoint-dir "$full" --checkpoint-every 2
# The reason: strerror(EFBIG), or HDF5's "errno = 27" where its text is cut.
grep -qE "File too large|errno = 27" "$tmp/err" \
    || fail "disk full: the reason (EFBIG) is not given: $(cat "$tmp/err")"
grep -q "the checkpoint of iteration 6 is intact, and a run resumes from it" "$tmp/err" \
    || fail "disk full: the checkpoint to resume from is not named: $(cat "$tmp/err")"
grep -q "with keep 2 the directory holds 2 checkpoints and the one being written: free space, or keep fewer" \
    "$tmp/err" || fail "disk full: no word on what frees room: $(cat "$tmp/err")"
after=$(cd "$full" && cksum ckpt-*.h5)
[ "$before" = "$after" ] || fail "disk full: earlier checkpoints changed: $before / $after"
! compgen -G "$full/*.tmp" >/dev/null || fail "disk full: .tmp left: $(ls "$full")"
out=$("$demo" "${small[@]}" --iterations 12 --checkpoint-dir "$full" --checkpoint-every 2 \
      2>"$tmp/err" | tail -n 1) || fail "disk full: the run after it failed: $(cat "$tmp/err")"
grep -q "resumed from .*ckpt-000000000006.h5" "$tmp/err" || fail "disk full: did not resume from 6"
[ "$out" = "$ref" ] || fail "disk full: '$out' != reference '$ref'"
echo "disk full: resumed from 6 afterwards, result ok"

# ---- 2b. the final checkpoint fails: the result is complete and still
# printed (--checkpoint-sync wrote it at once and dropped the result), and
# the exit status (1) comes with a message that says both
maps=$EMBER_BIN/ember-maps
for mode in --checkpoint-sync --checkpoint-async; do
    rm -rf "$tmp/fin"
    bash -c 'trap "" XFSZ; ulimit -f 64; exec "$@"' maps "$maps" --n 100000 --maps 5 \
        --checkpoint-dir "$tmp/fin" $mode --quiet >"$tmp/out" 2>"$tmp/err"
    st=$?
    [ "$st" = 1 ] || fail "final checkpoint $mode: exit $st: $(cat "$tmp/err")"
    grep -qx 'count: 100000' "$tmp/out" || fail "final checkpoint $mode: no result: $(cat "$tmp/out")"
    grep -q "the result is complete and written, but its final checkpoint failed (.*File too large" \
        "$tmp/err" || fail "final checkpoint $mode: $(cat "$tmp/err")"
done
echo "final checkpoint failed: the result still printed, both modes"

# ---- 2c. the directory is removed under a running job: the failure does
# not promise a checkpoint that went with it
gone=$tmp/gone
"$demo" "${small[@]}" --iterations 1000000 --checkpoint-dir "$gone" --checkpoint-every 2 \
    --quiet >"$tmp/out" 2>"$tmp/err" &
pid=$!
# Wait for a checkpoint after the first (up to 30 s: a loaded machine may be
# slow to start): the first is then accounted by the run (the second write
# starts only after it), so the failure has a checkpoint of its own to name.
# Removed on sight of the first, the directory could go between that file's
# rename and its directory's fsync, failing the first write itself, with
# no earlier checkpoint to say "gone too" of.
past_first() { ls "$gone" 2>/dev/null | grep '^ckpt-[0-9]*\.h5$' | grep -qv '^ckpt-000000000002\.h5$'; }
for _ in $(seq 600); do
    past_first && break
    sleep 0.05
done
past_first || { kill "$pid"; fail "dir removed: no second checkpoint in 30 s: $(ls "$gone")"; }
# (a file the job creates meanwhile fails rm's rmdir: again)
for _ in 1 2 3 4 5; do rm -rf "$gone" 2>/dev/null && break; done
[ ! -e "$gone" ] || { kill "$pid"; fail "dir removed: cannot remove $gone"; }
st=0
wait "$pid" || st=$?
[ "$st" = 1 ] || fail "dir removed: exit status $st, want 1: $(cat "$tmp/err")"
# (rm -rf removes one file at a time: a failure met while it runs finds the
# last checkpoint still there, and says it may be gone too)
grep -qE "the checkpoint of iteration [0-9]+ (is|may be) gone too" "$tmp/err" \
    || fail "dir removed: $(cat "$tmp/err")"
grep -q "is intact" "$tmp/err" && fail "dir removed: a removed checkpoint is called intact"
echo "dir removed: $(tail -n 1 "$tmp/err")"

# ---- 3. somebody else's checkpoint
a=$tmp/a b=$tmp/b
"$demo" "${small[@]}" --iterations 4 --checkpoint-dir "$a" --checkpoint-every 2 \
    --damping 0.85 --quiet >/dev/null || fail "writing the other run's checkpoint failed"
mkdir "$b"
cp "$a/ckpt-000000000004.h5" "$b/"
expect_fail "other parameters" "damping=0.85 (checkpoint) vs damping=0.9 (now)" -- \
    "$demo" "${small[@]}" --iterations 6 --checkpoint-dir "$b" --damping 0.9
grep -qF "$b/ckpt-000000000004.h5" "$tmp/err" || fail "other parameters: the file is not named"
expect_fail "other program" "program differs: ember-loopdemo (checkpoint) vs pagerank (now)" -- \
    "$demo" "${small[@]}" --iterations 6 --checkpoint-dir "$b" --program pagerank
expect_fail "other state size" "n=150000 (checkpoint) vs n=150001 (now)" -- \
    "$demo" --n 150001 --partitions 8 --iterations 6 --checkpoint-dir "$b"
[ -f "$b/ckpt-000000000004.h5" ] || fail "a refused checkpoint was deleted"
"$demo" "${small[@]}" --iterations 6 --checkpoint-dir "$b" --damping 0.9 --force-resume \
    >"$tmp/out" 2>"$tmp/err" || fail "--force-resume was refused: $(cat "$tmp/err")"
grep -q "resuming from .*ckpt-000000000004.h5 although parameters differ" "$tmp/err" \
    || fail "--force-resume: no warning: $(cat "$tmp/err")"
grep -q '^result steps=6 ' "$tmp/out" || fail "--force-resume: $(cat "$tmp/out")"
echo "force-resume: $(grep -o 'resuming from.*' "$tmp/err" | head -n 1)"
echo "test_loop_baddir: PASS"
