#!/usr/bin/env bash
# ember-inspect reads a verified file's HDF5 structure in a child process,
# because libhdf5 trusts that structure: data/inspect_heap_loop.h5 is a
# file sealed after its global heap was damaged (found by fuzz_inspect),
# and reading its root's "program" attribute loops for good inside
# libhdf5 1.10 (H5HG_read). The child's hang is that file's verdict
# (fuzz.inspect replays it with a 3 s limit); here: the child never
# outlives ember-inspect, killed (SIGKILL) or terminated (SIGTERM). (Not
# SIGINT: a background job of a script ignores it.)
set -euo pipefail
: "${EMBER_BIN:?}" "${EMBER_SRC:?}"
ins=$EMBER_BIN/ember-inspect
file=$EMBER_SRC/tests/integration/data/inspect_heap_loop.h5
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-inspect-child.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_inspect_child: FAIL: $*" >&2; exit 1; }

# the children of a process, from /proc (no procps needed)
children() {
    local s
    for s in /proc/[0-9]*/stat; do
        # pid (comm) state ppid ...: comm may hold spaces, so split after ')'
        local line
        line=$(cat "$s" 2>/dev/null) || continue
        set -- ${line##*) } # state ppid ...
        [ "$2" = "$pid" ] && echo "${s//[^0-9]/}"
    done
    return 0
}
# running: not gone and not a zombie
alive() {
    local line
    line=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    set -- ${line##*) }
    [ "$1" != Z ] && [ "$1" != X ]
}

for sig in KILL TERM; do
    "$ins" "$file" >"$tmp/out" 2>&1 &
    pid=$!
    child=
    for _ in $(seq 1000); do
        child=$(children)
        [ -n "$child" ] && break
        sleep 0.01
    done
    [ -n "$child" ] || fail "SIG$sig: ember-inspect started no child in 10 s: $(cat "$tmp/out")"
    sleep 0.5
    alive "$child" || fail "SIG$sig: the child ended within 0.5 s: libhdf5 no longer loops on" \
        "$file, so this test no longer reaches its case: $(cat "$tmp/out")"
    kill -"$sig" "$pid"
    st=0
    wait "$pid" || st=$?
    [ "$st" = $((128 + $(kill -l "$sig"))) ] || fail "SIG$sig: exit $st: $(cat "$tmp/out")"
    for _ in $(seq 200); do
        alive "$child" || break
        sleep 0.01
    done
    alive "$child" && fail "SIG$sig: the child $child outlived ember-inspect by 2 s"
    echo "SIG$sig: ember-inspect exited $st, its child went with it"
done
