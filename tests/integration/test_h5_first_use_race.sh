#!/usr/bin/env bash
# The first HDF5 call of a process may come from the background checkpoint
# writer while the main thread writes the program's output. The MPI
# build's HDF5 (Debian's hdf5-openmpi) is not thread-safe, so every HDF5
# call, even a type lookup (H5T_NATIVE_* call H5open, which initializes
# the library), must be under ember's HDF5 lock. ember_h5_write_array once
# checked its type outside it: with an edge list as input, ember-sssp's
# final checkpoint and its output raced on the library's initialization,
# and about one run in seven crashed (SIGSEGV) or failed ("cannot create
# checkpoint") in the MPI build. Here: 40 such runs, each from a fresh
# process and directory, must all succeed with the same output. (The
# serial build's HDF5 is thread-safe; the runs pass there either way.)
set -euo pipefail
: "${EMBER_BIN:?}" "${EMBER_SRC:?}"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-h5race.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "test_h5_first_use_race: FAIL: $*" >&2; exit 1; }
for i in $(seq 40); do
  rm -rf ck d.h5
  st=0
  "$EMBER_BIN/ember-sssp" --input "$EMBER_SRC/data/karate-weighted.el" --source 0 \
    --output d.h5 --checkpoint-dir ck --quiet >out.txt 2>err.txt || st=$?
  [ "$st" = 0 ] || { cat err.txt >&2; fail "run $i exited $st"; }
  h5dump -d /distances d.h5 >dump.txt || fail "run $i: no /distances"
  if [ "$i" = 1 ]; then cp dump.txt first.txt; fi
  cmp -s first.txt dump.txt || fail "run $i: output differs from run 1"
done
echo "test_h5_first_use_race: PASS"
