#!/usr/bin/env bash
# Bad input and bad usage: ember-pagerank and ember-cc exit 2 with a message
# naming the file, the line and the problem (or the flag and the value).
set -euo pipefail
bin=${EMBER_BIN:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
# expect PROGRAM EXIT_CODE 'message part' args...
expect() {
    local prog=$1 code=$2 part=$3
    shift 3
    set +e
    "$bin/$prog" "$@" > out.txt 2> err.txt
    local rc=$?
    set -e
    if [ "$rc" != "$code" ]; then
        echo "FAIL: $prog $* exited $rc, expected $code; stderr: $(cat err.txt)" >&2
        failures=$((failures + 1))
    elif ! grep -qF -- "$part" err.txt; then
        echo "FAIL: $prog $*: stderr lacks '$part': $(cat err.txt)" >&2
        failures=$((failures + 1))
    fi
}

printf '0 1\n1 2\n' > ok.el
: > empty.el
printf '# only a comment\n' > comments.el
printf '0 1\n1 abc\n' > word.el
printf '0 1\n2 3\n4\n' > one.el
printf '0 1\n-3 2\n' > neg.el
printf '0 1\n1 99999999999\n' > big.el
printf '%%%%MatrixMarket matrix array real general\n2 2\n1\n2\n3\n4\n' > array.mtx
printf '%%%%MatrixMarket matrix coordinate real general\n2 2 1\n1 x 1\n' > entry.mtx
printf 'no banner\n2 2 1\n1 1\n' > banner.mtx
printf '0 1\n' > notes.txt

for prog in ember-pagerank ember-cc; do
    out=(--output r.h5)
    expect $prog 2 "missing.el: no such file" --input missing.el "${out[@]}"
    expect $prog 2 "empty.el: empty file" --input empty.el "${out[@]}"
    expect $prog 2 "comments.el: no edges" --input comments.el "${out[@]}"
    expect $prog 2 "word.el:2: non-numeric token 'abc'" --input word.el "${out[@]}"
    expect $prog 2 "one.el:3: line has one id" --input one.el "${out[@]}"
    expect $prog 2 "neg.el:2: negative vertex id '-3'" --input neg.el "${out[@]}"
    expect $prog 2 "big.el:2: vertex id 99999999999 is too large" --input big.el "${out[@]}"
    expect $prog 2 "array.mtx:1: malformed Matrix Market header" --input array.mtx "${out[@]}"
    expect $prog 2 "banner.mtx:1: malformed Matrix Market header" --input banner.mtx "${out[@]}"
    expect $prog 2 "entry.mtx:3: non-numeric token 'x'" --input entry.mtx "${out[@]}"
    expect $prog 2 "notes.txt: not an HDF5 file" --input notes.txt --format h5 "${out[@]}"
    expect $prog 2 "--format: 'csv' is not one of" --input ok.el --format csv "${out[@]}"
    expect $prog 2 "--iterations: -1 is negative: it must be in [0, " --input ok.el --iterations -1 "${out[@]}"
    expect $prog 2 "--iterations: 99999999999999999999 is too large: it must be in [0, 4611686018427387904]" \
      --input ok.el --iterations 99999999999999999999 "${out[@]}"
    expect $prog 2 "--iterations: 'ten' is not a whole number" --input ok.el --iterations ten "${out[@]}"
    expect $prog 2 "--threads: 0 is out of range" --input ok.el --threads 0 "${out[@]}"
    expect $prog 2 "--threads: 'nan' is not a whole number" --input ok.el --threads nan "${out[@]}"
    expect $prog 2 "--resume: 'sometimes' is not one of auto|never|require" --input ok.el --resume sometimes "${out[@]}"
    expect $prog 2 "unknown option '--bogus'" --input ok.el --bogus "${out[@]}"
    expect $prog 2 "--input GRAPH is required" "${out[@]}"
    expect $prog 2 "needs a value" --input
    expect $prog 2 "--checkpoint-dir ck: no such directory, and --resume require needs" \
      --input ok.el --resume require --checkpoint-dir ck "${out[@]}"
    [ ! -e ck ] || fail "$prog: --resume require made the directory it refused"
    mkdir -p ck
    expect $prog 2 "no usable checkpoint" --input ok.el --resume require --checkpoint-dir ck "${out[@]}"
    rm -rf ck
    expect $prog 2 "need --checkpoint-dir" --input ok.el --checkpoint-every 5 "${out[@]}"
done
expect ember-pagerank 2 "--damping: 1.5 is out of range: it must be in [0, 1)" --input ok.el --damping 1.5 --output r.h5
expect ember-pagerank 2 "--damping: 1 is out of range" --input ok.el --damping 1 --output r.h5
expect ember-pagerank 2 "--damping: -0.1 is out of range" --input ok.el --damping -0.1 --output r.h5
expect ember-pagerank 2 "--damping: '0.5x' is not a finite number" --input ok.el --damping 0.5x --output r.h5
expect ember-pagerank 2 "--seed means nothing to ember-pagerank" --input ok.el --seed 3
expect ember-pagerank 2 "--tolerance: 'nan' is not a finite number" --input ok.el --tolerance nan
expect ember-cc 2 "--tolerance means nothing to ember-cc" --input ok.el --tolerance 0.1
expect ember-cc 2 "unknown option '--damping'" --input ok.el --damping 0.5 --output r.h5
expect ember-gen 2 "kron needs --scale" kron --output g.el
expect ember-gen 2 "--scale: 40 is out of range" kron --scale 40 --output g.el
expect ember-gen 2 "say what to generate" --output g.el
expect ember-convert 2 "give IN and OUT.h5" ok.el
# IN or OUT both as an argument and as an option: refused, not one ignored
expect ember-convert 2 "IN or OUT.h5 given twice" ok.el a.h5 --output b.h5
expect ember-convert 2 "IN or OUT.h5 given twice" ok.el a.h5 --input word.el
[ ! -e a.h5 ] && [ ! -e b.h5 ] || fail "ember-convert wrote an output after a refusal"
# '-' is no standard output: refused, not a file named '-'
expect ember-convert 2 "--output -: outputs are files" ok.el -
expect ember-pagerank 2 "--output -: outputs are files" --input ok.el --output -
[ ! -e ./- ] || fail "a file named '-' was written"
expect ember-convert 2 "word.el:2: non-numeric token" word.el out.h5

# A message is one line, whatever a name holds: a control byte shows as '?'
# (a newline in a file's name split the error in two)
printf '0 1\n1 abc\n' > $'odd\nname.el'
expect ember-pagerank 2 "odd?name.el:2: non-numeric token 'abc'" --input $'odd\nname.el'
[ "$(wc -l < err.txt)" = 1 ] || fail "a file name's newline split the message: $(cat err.txt)"
expect ember-pagerank 2 "--input gone?"$'\t'"x.el: no such file" --input $'gone\r\tx.el'
expect ember-pagerank 2 "--damping: '0.5?x' is not a finite number" --input ok.el --damping $'0.5\nx'
[ "$(wc -l < err.txt)" = 1 ] || fail "an argument's newline split the message: $(cat err.txt)"
# ... and the loop's lines: interrupted, resumed
set +e
"$bin/ember-pagerank" --input ok.el --checkpoint-dir $'c\nk' --checkpoint-every 1 \
    --iterations 5 --stop-at 2 --quiet > out.txt 2> err.txt
rc=$?
set -e
[ "$rc" = 75 ] && [ "$(wc -l < err.txt)" = 1 ] && grep -q "checkpoint written in c?k;" err.txt ||
    fail "--stop-at with a newline in --checkpoint-dir: exit $rc: $(cat err.txt)"
"$bin/ember-pagerank" --input ok.el --checkpoint-dir $'c\nk' --checkpoint-every 1 \
    --iterations 5 > out.txt 2> err.txt || fail "the resume: $(cat err.txt)"
grep -q "^ember-pagerank: resumed from c?k/ckpt-000000000002.h5 at iteration 2$" err.txt ||
    fail "the resume's line: $(cat err.txt)"

# --help and --version exit 0 on stdout
for prog in ember-pagerank ember-cc ember-gen ember-convert; do
    "$bin/$prog" --help | grep -q "examples:" || { echo "FAIL: $prog --help" >&2; failures=$((failures + 1)); }
    "$bin/$prog" --version | grep -q "(ember)" || { echo "FAIL: $prog --version" >&2; failures=$((failures + 1)); }
done

[ "$failures" = 0 ] || { echo "$failures failures" >&2; exit 1; }
echo PASS
