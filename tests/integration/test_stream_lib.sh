# test_stream_lib.sh: helpers shared by the test_stream_*.sh integration
# tests, which source it. Run by itself (ctest does, as every *.sh here) it
# checks its own reference word count on a known input: the oracle the
# other tests trust is tested too.
#
# Word counting independent of ember: words are maximal runs of bytes other
# than the six C-locale whitespace bytes, counted with tr/sort/uniq, written
# as the sink's CSV (RFC 4180 quoting) sorted in byte order.

export LC_ALL=C

WC="$EMBER_BIN/ember-stream-wordcount"

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# reference_count DIR: the expected complete-mode output for every
# (non-hidden) file in DIR: the header line, then the counts. awk 1 ends a
# last line that lacks its '\n'.
reference_count() {
    local files=("$1"/*)
    echo "word,count"
    [ -e "${files[0]}" ] || return 0
    awk 1 "${files[@]}" | tr -s ' \t\n\r\v\f' '\n' | grep -v '^$' | sort | uniq -c |
        awk '{
            n = $1; w = substr($0, index($0, $1) + length($1) + 1)
            if (w ~ /[",]/) { gsub(/"/, "\"\"", w); w = "\"" w "\"" }
            print w "," n
        }'
}

# newest_output DIR: the sink file of the highest batch.
newest_output() {
    ls "$1"/batch-*.csv 2>/dev/null | sort | tail -n 1
}

# make_file DIR NAME SEED WORDS: a file of WORDS words from a vocabulary
# with commas, quotes and UTF-8 in it, plus one word unique to the file,
# written under a dot name and renamed in (a file counts once renamed).
make_file() {
    local dir=$1 name=$2 seed=$3 words=$4
    awk -v seed="$seed" -v n="$words" -v uniq="only-in-$name" 'BEGIN {
        srand(seed)
        split("alpha beta gamma delta a,b \"q\" x\"y,z Alpha ALPHA \303\251t\303\251 - 0 the of and to in is it that", v, " ")
        nv = 0; for (k in v) nv++
        line = uniq
        for (i = 0; i < n; i++) {
            r = rand()
            w = (r < 0.15) ? sprintf("w%d", int(rand() * 5000)) : v[1 + int(rand() * nv)]
            line = line ((rand() < 0.1) ? "\t" : " ") w
            if (rand() < 0.08) { print line; line = "" }
        }
        print line
    }' > "$dir/.$name.part"
    mv "$dir/.$name.part" "$dir/$name"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    T=$(mktemp -d)
    trap 'rm -rf "$T"' EXIT
    printf 'b a\tb\r\n"q" a,b\f\vx"y\n' >"$T/one"
    printf 'no-newline b' >"$T/two"
    printf 'hidden' >"$T/.dot"
    want=$(printf 'word,count\n"""q""",1\na,1\n"a,b",1\nb,3\nno-newline,1\n"x""y",1')
    got=$(reference_count "$T")
    [ "$got" = "$want" ] || { printf 'got:\n%s\nwant:\n%s\n' "$got" "$want" >&2; fail "reference_count"; }
    make_file "$T" made 7 50
    [ -f "$T/made" ] && [ ! -e "$T/.made.part" ] || fail "make_file"
    grep -q '^only-in-made' "$T/made" || fail "make_file's own word"
    echo "test_stream_lib: the reference word count is right: PASS"
fi
