#!/usr/bin/env bash
# An ember graph file's /csr is written whole or not at all: `ember-gen
# blobs -o g.h5:/csr/targets` replaced the targets, resealed the file and
# exited 0, and ember-pagerank then ranked the old graph from the stored
# pull layout (exit 0). Writes at or under /csr (by any name) and to names
# starting with ".ember-unfinished." exit 2 naming the file and path and
# leave the graph as it was; a dataset beside the graph is still added.
set -uo pipefail
bin=${EMBER_BIN:?}
src=${EMBER_SRC:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "test_graph_csr_not_rewritten: FAIL: $*" >&2; exit 1; }

"$bin/ember-convert" "$src/data/karate.el" k.h5 2> /dev/null || fail "convert"
"$bin/ember-pagerank" --input k.h5 --output before.csv 2> /dev/null || fail "pagerank"
h5dump -H k.h5 > before.txt || fail "h5dump"

refused() { # PATH PATTERN
    "$bin/ember-gen" blobs --n 78 --d 1 --k 1 --quiet -o "k.h5:$1" > out.txt 2> err.txt
    local st=$?
    [ "$st" -eq 2 ] || fail "$1: exit $st, wanted 2: $(cat err.txt)"
    grep -qF -- "k.h5:$1" err.txt || fail "$1: the message does not name k.h5:$1: $(cat err.txt)"
    grep -qF -- "$2" err.txt || fail "$1: the message does not say '$2': $(cat err.txt)"
    h5dump -H k.h5 > after.txt || fail "$1: k.h5 does not open"
    cmp -s before.txt after.txt || fail "$1: k.h5 changed: $(diff before.txt after.txt)"
}
refused /csr/targets "inside /csr"
refused /csr/offsets "inside /csr"
refused /csr/pull/sources "inside /csr"
refused /./csr/targets "inside /csr"
refused /csr/extra "inside /csr"
refused /.ember-unfinished.x "reserved"
refused /a/.ember-unfinished.x "reserved"

"$bin/ember-pagerank" --input k.h5 --output after.csv 2> err.txt || fail "pagerank after: $(cat err.txt)"
cmp -s before.csv after.csv || fail "the ranks changed"
"$bin/ember-gen" blobs --n 10 --d 2 --k 1 --quiet -o k.h5:/points 2> err.txt ||
    fail "a dataset beside the graph: $(cat err.txt)"
"$bin/ember-pagerank" --input k.h5 --output beside.csv 2> err.txt || fail "pagerank beside: $(cat err.txt)"
cmp -s before.csv beside.csv || fail "the ranks changed with /points added"
exit 0
