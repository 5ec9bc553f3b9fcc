#!/usr/bin/env bash
# Every example of every program's --help runs (issue 10 §2): the lines of
# the "examples:" section (a line ending in '\' continues on the next) are
# run in order, program after program, in one scratch directory holding a
# copy of data/, with the programs on PATH; an example may use the files
# that earlier ones made. Each must exit 0. Also: -h prints the same help
# as --help; every program refuses an unknown flag with exit 2 naming it,
# and the common flags that mean nothing to a program the same way.
set -euo pipefail
bin=${EMBER_BIN:?}
src=${EMBER_SRC:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
cp -r "$src/data" data
export PATH="$bin:$PATH" OMP_NUM_THREADS=2

# in this order: the generators' files serve the later examples
programs="ember-gen ember-convert ember-pagerank ember-cc ember-sssp ember-kmeans
          ember-maps ember-inspect ember-stream-wordcount"
for p in "$bin"/ember-*; do # every installed program is covered
    name=$(basename "$p")
    case " $(echo $programs) ember-loopdemo ember-readme-loop ember-h5poke " in # + tests/programs
    *" $name "*) ;;
    *) fail "$name has no place in this test's list" ;;
    esac
done

# examples PROGRAM: its examples, one command a line (continuations joined)
examples() {
    "$1" --help | awk '
        /^examples:$/ { on = 1; next }
        on && /^$/ { on = 0 }
        on && /^  / {
            line = line $0
            if (line ~ /\\$/) { sub(/\\$/, "", line); next }
            sub(/^ +/, "", line); print line; line = ""
        }'
}

total=0
for p in $programs; do
    "$p" -h > h.txt || fail "$p -h: exit $?"
    "$p" --help > help.txt
    cmp -s h.txt help.txt || fail "$p: -h differs from --help"
    examples "$p" > ex.txt
    n=$(wc -l < ex.txt)
    [ "$n" -ge 2 ] || fail "$p: $n examples in --help, want at least 2"
    while IFS= read -r cmd; do
        st=0
        bash -o pipefail -c "$cmd" > out.txt 2> err.txt < /dev/null || st=$?
        # A picture needs its renderer (gnuplot, graphviz's dot), which
        # `make test` installs as root; without it, the example must say
        # how to install it, with exit 2.
        if [ "$st" = 2 ] && grep -q "which is not installed.*apt-get install" err.txt &&
            { ! command -v gnuplot || ! command -v dot; } > /dev/null; then
            total=$((total + 1))
            continue
        fi
        [ "$st" = 0 ] || { cat out.txt err.txt >&2; fail "$p: example '$cmd' exited $st"; }
        total=$((total + 1))
    done < ex.txt
    # an unknown flag: exit 2, named
    st=0
    "$p" --no-such-flag > out.txt 2> err.txt || st=$?
    [ "$st" = 2 ] || fail "$p --no-such-flag: exit $st, want 2"
    grep -q -- "--no-such-flag" err.txt || fail "$p: the unknown flag is not named: $(cat err.txt)"
done

# the examples left what they say
grep -q '^vertex,rank$' <(head -n 1 ranks.csv) || fail "ranks.csv has no header"
grep -q '^vertex,label$' <(head -n 1 cc.csv) || fail "cc.csv has no header"
last=$(ls out/batch-*.csv | tail -n 1)
[ "$(head -n 1 "$last")" = "word,count" ] || fail "$last has no header: $(cat "$last")"
grep -q '^be,2$' "$last" && grep -q '^question,1$' "$last" || fail "word counts: $(cat "$last")"

# common flags that mean nothing to a program: exit 2, named as such
refuse() { # PROGRAM FLAG [VALUE]
    local st=0
    "$@" > out.txt 2> err.txt || st=$?
    [ "$st" = 2 ] || fail "$*: exit $st, want 2"
    grep -q -- "$2 means nothing to $1" err.txt || fail "$*: $(cat err.txt)"
}
refuse ember-inspect --seed 1
refuse ember-inspect --threads 2
refuse ember-inspect --partitions 2
refuse ember-inspect --quiet
refuse ember-convert --seed 1
refuse ember-convert --partitions 2
refuse ember-gen --partitions 2
refuse ember-maps --iterations 3
refuse ember-maps --tolerance 0.1
refuse ember-pagerank --seed 1
refuse ember-cc --tolerance 0.1
refuse ember-sssp --seed 1
# what a program lists, it accepts: every flag of --help parses. Two
# unknown flags follow it, so that no work starts (a flag with a value
# takes the first as its value, the second stops the run).
for p in $programs; do
    "$p" --help | sed -n 's/^  \(--[a-z][a-z-]*\).*/\1/p' | sort -u > flags.txt
    [ -s flags.txt ] || fail "$p: no flags found in --help"
    while IFS= read -r f; do
        st=0
        "$p" "$f" --no-such-flag --no-such-flag > out.txt 2> err.txt < /dev/null || st=$?
        ! grep -q -- "unknown option '$f'\|$f means nothing" err.txt ||
            fail "$p lists $f in --help and rejects it: $(cat err.txt)"
    done < flags.txt
done
# ember-cc takes --undirected: components of a directed graph are weak ones
ember-cc --input data/dangling.el --undirected --quiet > out.txt ||
    fail "ember-cc --undirected: $(cat out.txt)"
ember-cc --input data/dangling.el --quiet > out2.txt
cmp -s out.txt out2.txt || fail "ember-cc --undirected changed the result"
echo "test_help_examples: $total examples of $(echo $programs | wc -w) programs ran"
