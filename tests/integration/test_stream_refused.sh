#!/usr/bin/env bash
# test_stream_refused.sh: arguments that would give a wrong result or lose
# output are refused with exit 2 and a message naming them, before anything
# is written.
#
# - The checkpoint location or the sink is the source directory, under any
#   spelling (in, in/., an absolute path, a symlink); the sink is the
#   checkpoint location. A location inside the source is fine.
# - Two queries (two checkpoint locations) on one sink directory: the
#   second is refused, naming the sink and the owner, and leaves no
#   location; the owner restarts.
# - Empty paths; waits outside 1 ms .. 365 days, or not above 0.
# - A late file (its name sorts before the last file taken) is not taken,
#   and the warning says how to have it counted: renamed after that name,
#   it is.
# - A committed file changed in place at the same size: a replay (after a
#   damaged snapshot) stops with exit 2 naming it instead of counting its
#   new bytes; without a replay the restart warns that the file changed
#   after its batch took it (not that it is a late file); a running stream
#   warns once at its next listing. A file of an uncommitted batch that
#   grew is refused with a recipe that keeps every byte, counted once; one
#   rewritten at the same size and time is refused when its re-run would
#   replace a sink file already out with other rows.
set -euo pipefail
. "$(dirname "$0")/test_stream_lib.sh"

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
export OMP_NUM_THREADS=1

expect_exit() { # CODE CMD...: runs CMD, stderr to $T/err, checks the status
    local want=$1 rc=0
    shift
    timeout 20 "$@" >"$T/out.txt" 2>"$T/err" || rc=$?
    [ "$rc" -eq "$want" ] || fail "exit $rc, not $want, from: $* ($(cat "$T/err"))"
}

# The checkpoint location is the source: its lock, metadata and logs would
# be counted as words.
mkdir in
echo "hello world" >in/z1
ln -s in lnk
for ck in in in/. "$T/in" ./in/ lnk; do
    expect_exit 2 "$WC" --source in --checkpoint-location "$ck" --sink out \
        --trigger available-now --quiet
    grep -q "checkpoint location $ck is the source directory in" "$T/err" ||
        fail "location $ck: $(cat "$T/err")"
done
[ "$(ls in)" = z1 ] || fail "a refused run wrote into the source: $(ls in)"
[ ! -e out ] || fail "a refused run made the sink"
# A location inside the source is fine: directories there are skipped.
expect_exit 0 "$WC" --source in --checkpoint-location in/ck --sink out \
    --trigger available-now --quiet
printf 'word,count\nhello,1\nworld,1\n' | cmp -s - out/batch-000000000000.csv ||
    fail "location inside the source: $(cat out/batch-000000000000.csv)"

# The sink is the source: each run would count the output of the last.
for sink in in in/. lnk; do
    expect_exit 2 "$WC" --source in --checkpoint-location ck --sink "$sink" \
        --trigger available-now --quiet
    grep -q "sink directory $sink is the source directory in" "$T/err" ||
        fail "sink $sink: $(cat "$T/err")"
done
[ ! -e ck ] || fail "a refused run made the checkpoint location"
# The sink is the checkpoint location: by path before either exists, by
# inode after.
expect_exit 2 "$WC" --source in --checkpoint-location ck2 --sink ck2/ --trigger once
grep -q "sink directory ck2/ is the checkpoint location ck2" "$T/err" || fail "$(cat "$T/err")"
[ ! -e ck2 ] || fail "a refused run made ck2"
mkdir ck2
expect_exit 2 "$WC" --source in --checkpoint-location ck2 --sink "$T/ck2" --trigger once
grep -q "is the checkpoint location ck2" "$T/err" || fail "$(cat "$T/err")"

# One query per sink: the second would overwrite batch-000000000000.csv.
mkdir in2
echo "other words" >in2/x1
expect_exit 0 "$WC" --source in --checkpoint-location ckA --sink shared \
    --trigger available-now --quiet
cp shared/batch-000000000000.csv first.csv
expect_exit 2 "$WC" --source in2 --checkpoint-location ckB --sink shared \
    --trigger available-now --quiet
grep -q "sink directory shared belongs to another query (.*checkpoint location $T/ckA" \
    "$T/err" || fail "shared sink: $(cat "$T/err")"
cmp -s first.csv shared/batch-000000000000.csv || fail "the second query overwrote the first"
[ ! -e ckB ] || fail "a refused query left its location: $(find ckB)"
# A changed query, and a location whose parent is missing, with a new
# sink: refused, and the sink directory the start made is gone again.
expect_exit 2 "$WC" --source in --checkpoint-location ckA --sink newsink \
    --output-mode update --trigger once --quiet
grep -q "output_mode" "$T/err" || fail "changed query: $(cat "$T/err")"
[ ! -e newsink ] || fail "a refused query left its new sink directory"
rc=0
"$WC" --source in --checkpoint-location no/such/ck --sink newsink2 --trigger once \
    --quiet 2>"$T/err" || rc=$?
[ "$rc" -ne 0 ] || fail "a location under a missing parent was made"
[ ! -e newsink2 ] || fail "a failed start left its new sink directory"
echo "more" >in/z2
expect_exit 0 "$WC" --source in --checkpoint-location ckA --sink shared \
    --trigger available-now --quiet
[ -e shared/batch-000000000001.csv ] || fail "the owner could not go on"
# A damaged owner file: refused, saying how to recover; removed, the
# owner goes on and writes it again.
cp shared/.ember-sink owner.bak
echo x >>shared/.ember-sink
expect_exit 2 "$WC" --source in --checkpoint-location ckA --sink shared \
    --trigger available-now --quiet
grep -q "shared/.ember-sink: fails its checksum .*remove shared/.ember-sink and the next start writes it again" \
    "$T/err" || fail "damaged owner file: $(cat "$T/err")"
rm shared/.ember-sink
expect_exit 0 "$WC" --source in --checkpoint-location ckA --sink shared \
    --trigger available-now --quiet
grep -q "^query $(sed -n 's/^query //p' owner.bak)\$" shared/.ember-sink ||
    fail "the owner file written again names another query"

# Empty paths name the option.
expect_exit 2 "$WC" --source in --checkpoint-location ck3 --sink ""
grep -q -- "--sink: the path is empty" "$T/err" || fail "empty sink: $(cat "$T/err")"
expect_exit 2 "$WC" --source "" --checkpoint-location ck3
grep -q -- "--source: the path is empty" "$T/err" || fail "empty source: $(cat "$T/err")"
expect_exit 2 "$WC" --source in --checkpoint-location ""
grep -q -- "--checkpoint-location: the path is empty" "$T/err" || fail "$(cat "$T/err")"
# A location through a file: the argument's fault (exit 2), not the disk's.
touch afile
expect_exit 2 "$WC" --source in --checkpoint-location afile/x --trigger once
grep -q "afile/x: Not a directory" "$T/err" || fail "location through a file: $(cat "$T/err")"

# Waits: 1 ms to 365 days (8760 h).
for t in 1e-9s 0.5ms 99999999999999999999h 1e300s 8761h; do
    expect_exit 2 "$WC" --source in --checkpoint-location ck3 \
        --trigger "processing-time=$t"
    grep -q -- "--trigger: 'processing-time=$t' is .* seconds; the range is 1ms to 8760h" \
        "$T/err" || fail "interval $t: $(cat "$T/err")"
done
for t in 0 -1s abc 2x; do
    expect_exit 2 "$WC" --source in --checkpoint-location ck3 --trigger "processing-time=$t"
    grep -q -- "--trigger: 'processing-time=$t': the interval is not a duration > 0 .*processing-time=2s" \
        "$T/err" || fail "interval $t: $(cat "$T/err")"
done
expect_exit 2 "$WC" --source in --checkpoint-location ck3 --poll 1e-6
grep -q -- "--poll: '1e-6'" "$T/err" || fail "poll: $(cat "$T/err")"
[ ! -e ck3 ] || fail "a refused run made ck3"

# A late file: not taken, and the warning says which rename gets it counted.
mkdir lin
echo "b b" >lin/f2
expect_exit 0 "$WC" --source lin --checkpoint-location lck --trigger once --quiet
echo "a" >lin/f1
expect_exit 0 "$WC" --source lin --checkpoint-location lck --trigger once --quiet
grep -q "late file lin/f1 is not taken.*rename it to a name that sorts after f2" "$T/err" ||
    fail "late file: $(cat "$T/err")"
mv lin/f1 lin/f3
expect_exit 0 "$WC" --source lin --checkpoint-location lck --trigger once --quiet
grep -qx "a,1" "$T/out.txt" || fail "the renamed late file was not counted: $(cat "$T/out.txt")"
grep -q "late file" "$T/err" && fail "late again after the rename: $(cat "$T/err")"

# A batch left uncommitted after its sink file was written (as a kill
# between the two leaves it), one of its files then rewritten at the same
# size and time: its re-run would compute other rows than the sink file
# already out. Refused, the sink file kept; with the file restored, the
# re-run keeps the sink file as it was.
mkdir hin
echo "a b" >hin/f1
echo "ccc d" >hin/f2
expect_exit 0 "$WC" --source hin --checkpoint-location hck --sink hout --trigger available-now \
    --max-files-per-trigger 1 --quiet
rm hck/commits/1
cp hout/batch-000000000001.csv first.csv
cp -p hin/f2 f2.orig
sed -i 's/ccc/zzz/' hin/f2
touch -r f2.orig hin/f2
expect_exit 2 "$WC" --source hin --checkpoint-location hck --sink hout --trigger available-now --quiet
grep -q "sink file hout/batch-000000000001.csv, written before a crash by the first run of batch 1, differs from what its re-run computes" \
    "$T/err" || fail "a re-run on changed bytes: $(cat "$T/err")"
cmp -s first.csv hout/batch-000000000001.csv || fail "a re-run on changed bytes replaced the sink file"
cp -p f2.orig hin/f2
expect_exit 0 "$WC" --source hin --checkpoint-location hck --sink hout --trigger available-now --quiet
cmp -s first.csv hout/batch-000000000001.csv || fail "the re-run on the restored file changed the sink file"

# A file of an uncommitted batch that grew (written in place): refused, and
# the recipe the message gives keeps every byte, each counted once.
mkdir gin
echo "a" >gin/f1
echo "b c" >gin/f2
expect_exit 0 "$WC" --source gin --checkpoint-location gck --trigger available-now \
    --max-files-per-trigger 1 --quiet
rm gck/commits/1 # as after a kill before batch 1's commit
echo "more" >>gin/f2
expect_exit 2 "$WC" --source gin --checkpoint-location gck --trigger once --quiet
recipe=$(grep -o "tail -c +5 'gin/f2' > NEW), cut this file back (truncate -s 4 'gin/f2'; touch -d @[0-9.]* 'gin/f2')" \
    "$T/err") || fail "grown file: $(cat "$T/err")"
recipe=${recipe/), cut this file back (/; }
eval "${recipe%)}"
mv NEW gin/f3
expect_exit 0 "$WC" --source gin --checkpoint-location gck --trigger available-now --quiet
[ "$(sed -n '/^word,count$/,$p' "$T/out.txt" | tail -5 | tr '\n' ' ')" = "word,count a,1 b,1 c,1 more,1 " ] ||
    fail "after the recipe: $(cat "$T/out.txt")"
# A same-size change in place to a file a committed batch read.
mkdir rin
for i in 1 2 3 4; do echo "apple banana w$i" >rin/f$i; done
expect_exit 0 "$WC" --source rin --checkpoint-location rck --sink rout --trigger available-now \
    --max-files-per-trigger 1 --quiet
sleep 0.05
printf 'cherry' | dd of=rin/f4 conv=notrunc status=none
cp -a rck rck.undamaged
printf 'Z' | dd of=rck/state/3.h5 bs=1 seek=5000 conv=notrunc status=none
echo grape >rin/f5
expect_exit 2 "$WC" --source rin --checkpoint-location rck --sink rout --trigger available-now \
    --max-files-per-trigger 1
grep -q "re-running batch 3: source file rin/f4 changed after batch 3 read it" "$T/err" ||
    fail "replay of a changed file: $(cat "$T/err")"
[ ! -e rout/batch-000000000004.csv ] || fail "a batch ran on a wrong state"
rm -rf rck && mv rck.undamaged rck
expect_exit 0 "$WC" --source rin --checkpoint-location rck --sink rout --trigger available-now \
    --max-files-per-trigger 1
grep -q "source file rin/f4 was modified after batch 3 took it" "$T/err" ||
    fail "no changed-file warning: $(cat "$T/err")"
grep -q "late file" "$T/err" && fail "f4 called a late file: $(cat "$T/err")"
printf 'word,count\napple,4\nbanana,4\ngrape,1\nw1,1\nw2,1\nw3,1\nw4,1\n' |
    cmp -s - rout/batch-000000000004.csv || fail "batch 4: $(cat rout/batch-000000000004.csv)"
# chmod changes only the ctime: the taken files' bytes and mtimes are the
# ones recorded, so no warning (f4's mtime did change above).
sleep 0.05
chmod g+w rin/*
expect_exit 0 "$WC" --source rin --checkpoint-location rck --sink rout --trigger available-now
grep -q "rin/f[1235] was modified" "$T/err" && fail "chmod called a change: $(cat "$T/err")"
grep -q "source file rin/f4 was modified after batch 3 took it" "$T/err" ||
    fail "no changed-file warning after chmod: $(cat "$T/err")"
grep -q "late file" "$T/err" && fail "chmod made a late file: $(cat "$T/err")"
# Files whose offsets entries retention deleted: a chmod -R is one line
# that says what it may be, not "late file ... is not taken" for each
# file counted long ago.
mkdir old
for i in 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33; do
    echo "w$i" > "old/f$i"
done
expect_exit 0 "$WC" --source old --checkpoint-location ock --sink oout --trigger available-now \
    --max-files-per-trigger 1 --quiet
sleep 0.05
chmod -R g+w old
expect_exit 0 "$WC" --source old --checkpoint-location ock --sink oout --trigger available-now
grep -q "late file" "$T/err" && fail "chmod -R called files late: $(head -3 "$T/err")"
grep -q "files of old at or before f33, the last file taken (f10 the first), written before" \
    "$T/err" && grep -q "a mode, owner or link change (chmod, chown, cp -a)" "$T/err" ||
    fail "chmod -R of retired files: $(cat "$T/err")"
[ "$(grep -c "inode changed" "$T/err")" = 1 ] || fail "not one line: $(cat "$T/err")"
# A file whose mtime lies past 2262 (no nanosecond count records it):
# unchanged, it is not called modified at every start.
mkdir fin
echo far > fin/f1
touch -d '2400-01-01' fin/f1
expect_exit 0 "$WC" --source fin --checkpoint-location fck --trigger once --quiet
expect_exit 0 "$WC" --source fin --checkpoint-location fck --trigger once
grep -q "was modified" "$T/err" && fail "an unchanged far-future file called modified: $(cat "$T/err")"
# A file written in place under its final name while the stream runs:
# the batch took what was there, and the running stream says so at its
# next listing, once (it used to say nothing until a restart).
mkdir win
"$WC" --source win --checkpoint-location wck --sink wout --poll 0.01 2>"$T/werr" &
wpid=$!
printf 'slow\n' >win/.f1 && mv win/.f1 win/f1
for _ in $(seq 200); do [ -e wout/batch-000000000000.csv ] && break; sleep 0.05; done
[ -e wout/batch-000000000000.csv ] || fail "no batch of win/f1"
printf 'slow\n' >>win/f1
for _ in $(seq 100); do grep -q "was modified" "$T/werr" && break; sleep 0.05; done
printf 'slow\n' >>win/f1
sleep 0.2
kill -TERM "$wpid"
rc=0
wait "$wpid" || rc=$?
[ "$rc" -eq 75 ] || fail "the watching stream: exit $rc: $(cat "$T/werr")"
[ "$(grep -c "source file win/f1 was modified after batch 0 took it" "$T/werr")" -eq 1 ] ||
    fail "not one warning of win/f1 written in place: $(cat "$T/werr")"
echo "test_stream_refused: PASS"
