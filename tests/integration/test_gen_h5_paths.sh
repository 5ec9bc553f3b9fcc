#!/usr/bin/env bash
# ember-gen blobs --output FILE.h5:/path adds a dataset to a file that is
# there: an existing dataset at the path is replaced, but a group never is
# (--output bb.h5:/a deleted /a/b/c and /a/b/d, exit 0); a path through a
# dataset, the root "/", an empty name and "f.h5:" (no path after the
# colon) exit 2 with a message naming the output, before any work, and
# leave the file as it was (nor create "f.h5:").
set -uo pipefail
bin=${EMBER_BIN:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "test_gen_h5_paths: FAIL: $*" >&2; exit 1; }
gen() { "$bin/ember-gen" blobs --k 2 --quiet "$@"; }

gen --n 100 --d 3 --output bb.h5:/a/b/c || fail "gen /a/b/c"
gen --n 50 --d 2 --output bb.h5:/a/b/d || fail "gen /a/b/d"
h5dump -H bb.h5 > before.txt || fail "h5dump bb.h5"

# refused WHAT PATTERN OUTPUT: exit 2, the message matches, bb.h5 unchanged
refused() {
    gen --n 100 --d 3 --output "$3" > out.txt 2> err.txt
    local st=$?
    [ "$st" -eq 2 ] || fail "$1: exit $st, wanted 2: $(cat err.txt)"
    grep -q -- "$2" err.txt || fail "$1: the message does not say '$2': $(cat err.txt)"
    h5dump -H bb.h5 > after.txt || fail "$1: bb.h5 does not open"
    cmp -s before.txt after.txt || fail "$1: bb.h5 changed: $(diff before.txt after.txt)"
}
refused "a group" "bb.h5:/a: is a group, not a dataset" bb.h5:/a
refused "a nested group" "is a group" bb.h5:/a/b
refused "through a dataset" "a parent on the path is not a group" bb.h5:/a/b/c/x
refused "the root" "names no dataset" bb.h5:/
refused "an empty name" "names no dataset" bb.h5:/a/
refused "no path after the colon" "empty dataset path" bb.h5:
refused "the root of a new file" "names no dataset" new.h5:/
[ -e new.h5 ] && fail "new.h5 was created"
refused "no path, new file" "empty dataset path" new.h5:
[ -e new.h5: ] && fail "a file named 'new.h5:' was created"
refused "a dataset path in a file not named .h5" "needs an HDF5 file named .h5" pts.dat:/p
[ -e pts.dat ] && fail "pts.dat was created"

# each generator refuses the other's options, and a graph that cannot fit
# (exit 2 before writing a byte)
expect2() { # expect2 WHAT MESSAGE ARGS...
    local what=$1 want=$2
    shift 2
    "$bin/ember-gen" "$@" > out.txt 2> err.txt
    local st=$?
    [ "$st" -eq 2 ] || fail "$what: exit $st, wanted 2: $(cat err.txt)"
    grep -q -- "$want" err.txt || fail "$what: the message does not say '$want': $(cat err.txt)"
}
expect2 "kron --n" "are blobs' options" kron --scale 4 --n 5 --output k.el
expect2 "blobs --edge-factor" "are kron's options" blobs --n 3 --d 2 --k 1 --edge-factor 8 --output b.csv
expect2 "blobs --weighted" "are kron's options" blobs --n 3 --d 2 --k 1 --weighted --output b.csv
expect2 "2^40 edges as text" "GB free" kron --scale 30 --edge-factor 1024 --output huge.el
[ -n "$(ls huge.el* 2> /dev/null)" ] && fail "huge.el was started"
expect2 "2^40 edges as HDF5" "GB" kron --scale 30 --edge-factor 1024 --output huge.h5

# a dataset is replaced, the others kept
gen --n 10 --d 4 --output bb.h5:/a/b/c || fail "replacing /a/b/c"
h5dump -H bb.h5 > after.txt
grep -A3 'DATASET "c"' after.txt | grep -q '( 10, 4 )' || fail "/a/b/c not replaced: $(cat after.txt)"
grep -A3 'DATASET "d"' after.txt | grep -q '( 50, 2 )' || fail "/a/b/d lost: $(cat after.txt)"
echo "test_gen_h5_paths: PASS"
