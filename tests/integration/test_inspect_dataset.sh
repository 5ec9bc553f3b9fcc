#!/usr/bin/env bash
# ember-inspect on a dataset checkpoint (ds-*.h5, written by
# ember_checkpoint_eager from a small program built here against the build
# tree): the dataset's name, record type, records and partitions, and the
# lineage recorded, in text and in --json; a file given by name directly.
set -euo pipefail
: "${EMBER_BIN:?}" "${EMBER_SRC:?}" "${EMBER_BUILD:?}"
export LC_ALL=C
CC=${CC:-cc}
ins=$EMBER_BIN/ember-inspect
json_check=$EMBER_SRC/tests/integration/json_check.awk
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-inspect-ds.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_inspect_dataset: FAIL: $*" >&2; exit 1; }

cat >"$tmp/ck.c" <<'C'
#include <ember.h>
#include <stdio.h>
static int twice(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *x = in;
    int64_t *y = out;
    for (size_t i = 0; i < n; i++)
        y[i] = 2 * x[i];
    return 0;
}
int main(int argc, char **argv)
{
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = NULL;
    ember_ds *r = NULL, *m = NULL;
    ember_ctx_opts o = {.checkpoint_dir = argc > 1 ? argv[1] : "."};
    int rc = ember_ctx_create(&ctx, &o, msg);
    if (!rc)
        rc = ember_range(&r, ctx, 0, 1000, 1, 3, msg);
    if (!rc)
        rc = ember_map(&m, r, NULL, twice, NULL, 0, msg);
    if (!rc)
        rc = ember_ds_set_name(m, "doubled");
    if (!rc)
        rc = ember_checkpoint_eager(m, msg);
    if (rc)
        fprintf(stderr, "ck: %s\n", msg);
    else
        printf("%s\n", ember_checkpoint_path(m));
    ember_ds_free(&m);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
    return rc != 0;
}
C
flags=()
grep -q '^EMBER_SANITIZE:BOOL=ON' "$EMBER_BUILD/CMakeCache.txt" 2>/dev/null \
  && flags=(-fsanitize=address,undefined -fno-omit-frame-pointer)
"$CC" "${flags[@]}" -I"$EMBER_SRC/include" "$tmp/ck.c" -L"$EMBER_BUILD/lib" -lember \
  -Wl,-rpath,"$EMBER_BUILD/lib" -o "$tmp/ck" || fail "cannot build the checkpoint writer"
mkdir "$tmp/ck.d"
file=$("$tmp/ck" "$tmp/ck.d") || fail "ember_checkpoint_eager failed"
case "$(basename "$file")" in ds-*.h5) ;; *) fail "unexpected checkpoint name $file" ;; esac

"$ins" "$tmp/ck.d" >"$tmp/text" || { cat "$tmp/text"; fail "a fresh dataset checkpoint does not verify"; }
grep -q ': verified$' "$tmp/text" || fail "not reported verified"
grep -q 'kind: *dataset' "$tmp/text" || { cat "$tmp/text"; fail "kind is not dataset"; }
grep -Eq 'datasets/[^ ]* +i64 +1000 records, 3 partitions +ok' "$tmp/text" \
  || { cat "$tmp/text"; fail "dataset row lacks type, records or partitions"; }
sed -n '/^  lineage:/,$p' "$tmp/text" | grep -q 'doubled' || { cat "$tmp/text"; fail "lineage lacks the dataset's name"; }

"$ins" --json "$file" >"$tmp/json" || fail "--json on the file"
[ "$(wc -l <"$tmp/json")" = 1 ] || fail "--json: one line expected"
awk -f "$json_check" "$tmp/json" || fail "--json is not valid JSON"
grep -q '"group": "datasets", "name": "[^"]*", "type": "i64", "records": 1000, "partitions": 3, "value": "", "verified": true' "$tmp/json" \
  || { cat "$tmp/json"; fail "--json item lacks type, records or partitions"; }
grep -q '"kind": "dataset"' "$tmp/json" || fail "--json kind"
echo "test_inspect_dataset: PASS"
