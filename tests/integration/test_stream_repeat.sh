#!/usr/bin/env bash
# Complete mode, a batch that changes no count (an empty file): its sink
# file equals the previous batch's, a copy of it (a file of its own: a
# hard link made tools such as gzip refuse the files, and a consumer that
# emptied one emptied both). A batch that changes counts gets a new file.
set -euo pipefail
bin=${EMBER_BIN:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir src out
printf 'b a b\nc\n' > src/f1
: > src/f2
printf 'a d\n' > src/f3
"$bin/ember-stream-wordcount" --source src --checkpoint-location ck --sink out \
    --output-mode complete --trigger available-now --max-files-per-trigger 1 --quiet
files=(out/batch-*)
[ "${#files[@]}" -eq 3 ] || fail "want 3 batch files, got: ${files[*]}"
cmp -s "${files[0]}" "${files[1]}" || fail "the empty batch's table differs"
[ "$(stat -c %i "${files[0]}")" != "$(stat -c %i "${files[1]}")" ] &&
    [ "$(stat -c %h "${files[1]}")" = 1 ] || fail "the empty batch's file is a link"
[ "$(stat -c %i "${files[1]}")" != "$(stat -c %i "${files[2]}")" ] \
    || fail "a batch with new counts shares the previous file"
printf 'word,count\na,2\nb,2\nc,1\nd,1\n' | cmp -s - "${files[2]}" || fail "final table: $(cat "${files[2]}")"
echo "complete-mode repeat: ok"
