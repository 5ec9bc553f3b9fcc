#!/usr/bin/env bash
# The programs' history (/scalars/history: a row count, a stride, then rows
# of iteration, value, seconds, flags) comes back from a checkpoint as it
# was saved, and a file that verifies may hold any numbers there: its
# checksum proves its bytes, not who wrote them. Checkpoints made to verify
# with such numbers (tests/programs/ember-h5poke rewrites the dataset
# through the public API, which seals the file again):
#   - a row count of 5000 (the array holds 1024 rows): the resumed run
#     wrote past the array and died of SIGSEGV; now exit 2 naming the
#     checkpoint and the history;
#   - a NaN row count, a stride of -1, a flag of 7: the same;
#   - 1024 rows of iteration 0 (the resumed run doubled its stride until it
#     wrapped and divided by zero: SIGFPE), rows going back, a row past
#     the checkpoint's iteration: the same;
#   - a NaN flag in a used row: ember-inspect --plot of the directory
#     draws it as no mark (it cast NaN to int, undefined behaviour);
# and the same file unpoked resumes as before.
set -uo pipefail
bin=${EMBER_BIN:?}
src=${EMBER_SRC:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "test_resume_history_checked: FAIL: $*" >&2; exit 1; }
rows=$((2 + 1024 * 4))
pr=("$bin/ember-pagerank" --input "$src/data/karate.el" --undirected --checkpoint-dir ck
    --checkpoint-every 5 --quiet)
"${pr[@]}" --iterations 10 || fail "the first run"
cp ck/ckpt-000000000010.h5 good.h5

# poked WHAT INDEX=VALUE...: the newest checkpoint's history replaced, the
# resume refused with exit 2, naming it
poked() {
    local what=$1
    shift
    cp good.h5 ck/ckpt-000000000010.h5
    "$bin/ember-h5poke" ck/ckpt-000000000010.h5:/scalars/history "$rows" "$@" ||
        fail "$what: cannot poke the checkpoint"
    "$bin/ember-inspect" ck/ckpt-000000000010.h5 > insp.txt 2>&1 ||
        fail "$what: the poked checkpoint does not verify: $(cat insp.txt)"
    "${pr[@]}" --iterations 12 > out.txt 2> err.txt
    local st=$?
    [ "$st" -eq 2 ] || fail "$what: exit $st, wanted 2: $(cat err.txt)"
    grep -q "ckpt-000000000010.h5: its history (/scalars/history) is malformed" err.txt ||
        fail "$what: the message does not name the checkpoint's history: $(cat err.txt)"
}
poked "5000 rows" 0=5000
poked "NaN rows" 0=nan
poked "a stride of -1" 0=1 1=-1 2=10
poked "a flag of 7" 0=1 1=1 2=10 5=7
# rows that never thin out: every row iteration 0 (the run divided by zero,
# SIGFPE), rows going back, a row past the checkpoint's iteration
poked "1024 rows of iteration 0" 0=1024 1=1
poked "rows going back" 0=2 1=1 2=9 6=8
poked "a row past the checkpoint" 0=1 1=1 2=11

# a NaN flag where --plot reads the history: no mark, no undefined cast
cp good.h5 ck/ckpt-000000000010.h5
"$bin/ember-h5poke" ck/ckpt-000000000010.h5:/scalars/history "$rows" 0=2 1=1 2=9 3=0.5 \
    4=0.1 5=nan 6=10 7=0.4 8=0.1 9=1 || fail "cannot poke a NaN flag"
"$bin/ember-inspect" --plot ck -o plot.svg > out.txt 2> err.txt
st=$?
[ "$st" -le 2 ] || fail "--plot of a NaN flag: exit $st: $(cat err.txt)"

# the checkpoint as written resumes
cp good.h5 ck/ckpt-000000000010.h5
"${pr[@]}" --iterations 12 2> err.txt || fail "the good checkpoint did not resume: $(cat err.txt)"
echo "test_resume_history_checked: ok"
