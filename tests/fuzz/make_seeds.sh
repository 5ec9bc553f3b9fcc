#!/usr/bin/env bash
# Regenerates the generated seeds of tests/fuzz/corpus (the files named
# seed_*) with the programs of a build. Regression inputs (crash_*, repro_*)
# are never touched. Run after a change to a file format:
#
#   bash tests/fuzz/make_seeds.sh build
#
# Harness input layouts are in each tests/fuzz/fuzz_<h>.c: most start with
# one byte of options, the checkpoint harness takes the file as is.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?usage: make_seeds.sh BUILD_DIR}" && pwd)
bin=$build/bin
corpus=$src/tests/fuzz/corpus
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-seeds.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1

# prefix BYTE IN OUT: OUT is the byte (octal escape) followed by IN.
prefix() { { printf "$1"; cat "$2"; } >"$3"; }

# ---- graph_text: option byte + edge list or Matrix Market
d=$corpus/graph_text
mkdir -p "$d"
rm -f "$d"/seed_*
cat >"$tmp/small.mtx" <<'M'
%%MatrixMarket matrix coordinate pattern general
% a 5 x 5 pattern
5 5 6
1 2
2 3
3 1
4 5
5 4
1 1
M
cat >"$tmp/sym.mtx" <<'M'
%%MatrixMarket matrix coordinate real symmetric
4 4 4
2 1 0.5
3 1 -1e3
4 3 2
4 4 1.25
M
cat >"$tmp/skew.mtx" <<'M'
%%MatrixMarket matrix coordinate integer skew-symmetric
3 3 2
2 1 7
3 2 -4
M
printf '# ids that need relabelling\n18446744073709551615 7\n7\t1000000000000\n1000000000000 18446744073709551615 0.5\n\n%% other comment\n' >"$tmp/wide.el"
prefix '\000' "$src/data/karate.el" "$d/seed_karate"
prefix '\001' "$src/data/karate.el" "$d/seed_karate_undirected"
prefix '\012' "$src/data/dangling.el" "$d/seed_dangling_bydst_degree"
prefix '\104' "$src/data/dangling.el" "$d/seed_dangling_relabel_h5copy"
prefix '\104' "$tmp/wide.el" "$d/seed_wide_relabel_h5copy"
prefix '\040' "$tmp/wide.el" "$d/seed_wide_limit"
prefix '\120' "$tmp/small.mtx" "$d/seed_mtx_general_h5copy"
prefix '\021' "$tmp/sym.mtx" "$d/seed_mtx_symmetric_undirected"
prefix '\032' "$tmp/skew.mtx" "$d/seed_mtx_skew_bydst_degree"
printf '0 1 2.5\n1 2 7\n2 0 0.125\n0 2 123456789012345\n1 0 1e-3\n2 1 5.\n' >"$tmp/weighted.el"
prefix '\200' "$tmp/weighted.el" "$d/seed_weighted"
prefix '\220' "$tmp/sym.mtx" "$d/seed_mtx_symmetric_weighted"

# ---- csv: option byte + file
d=$corpus/csv
mkdir -p "$d"
rm -f "$d"/seed_*
prefix '\000' "$src/data/iris.csv" "$d/seed_iris_auto"
prefix '\141' "$src/data/iris.csv" "$d/seed_iris_comma_4parts"
printf 'x;y;z\n1;2.5;-3e-2\n# comment\n\n4;5;6\r\n' >"$tmp/semi.csv"
prefix '\012' "$tmp/semi.csv" "$d/seed_semicolon_header"
printf '1 2\n3\t4\n  5   6  \n0.1e400 0\n' >"$tmp/ws.csv"
prefix '\024' "$tmp/ws.csv" "$d/seed_whitespace_noheader"
printf '0.30000000000000004\n1e-320\n-0\n123456789012345678901234567890\n' >"$tmp/one.csv"
prefix '\040' "$tmp/one.csv" "$d/seed_one_column"

# ---- graph_h5: option byte + ember's HDF5 CSR
d=$corpus/graph_h5
mkdir -p "$d"
rm -f "$d"/seed_*
"$bin/ember-convert" "$src/data/karate.el" "$tmp/karate.h5" --undirected --quiet
"$bin/ember-convert" "$tmp/wide.el" "$tmp/wide.h5" --relabel --quiet
"$bin/ember-convert" "$tmp/small.mtx" "$tmp/small.h5" --quiet
prefix '\000' "$tmp/karate.h5" "$d/seed_karate"
prefix '\006' "$tmp/karate.h5" "$d/seed_karate_bydst_degree"
prefix '\000' "$tmp/wide.h5" "$d/seed_wide_ids"
prefix '\011' "$tmp/small.h5" "$d/seed_small_undirected_limit"

# ---- checkpoint: checkpoint files as written
d=$corpus/checkpoint
mkdir -p "$d"
rm -f "$d"/seed_*
"$bin/ember-pagerank" --input "$src/data/karate.el" --undirected --quiet \
  --checkpoint-dir "$tmp/pr" --checkpoint-every 5 --iterations 12 --top 1 >/dev/null
cp "$(ls "$tmp"/pr/*.h5 | sort | tail -1)" "$d/seed_pagerank_karate"
head -41 "$src/data/iris.csv" >"$tmp/iris40.csv"
"$bin/ember-kmeans" --input "$tmp/iris40.csv" --k 3 --quiet \
  --checkpoint-dir "$tmp/km" --checkpoint-every 2 --iterations 4 \
  --tolerance 0 --output "$tmp/km.h5" >/dev/null
cp "$(ls "$tmp"/km/*.h5 | sort | tail -1)" "$d/seed_kmeans_iris40"
"$bin/ember-maps" --help >/dev/null 2>&1 || true
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
    ember_ctx_opts o = {.checkpoint_dir = argv[argc - 1]};
    int rc = ember_ctx_create(&ctx, &o, msg);
    if (!rc)
        rc = ember_range(&r, ctx, 0, 40, 1, 3, msg);
    if (!rc)
        rc = ember_map(&m, r, NULL, twice, NULL, 0, msg);
    if (!rc)
        rc = ember_ds_set_name(m, "doubled");
    if (!rc)
        rc = ember_checkpoint_eager(m, msg);
    if (!rc)
        printf("%s\n", ember_checkpoint_path(m));
    ember_ds_free(&m);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
    return rc != 0;
}
C
mkdir "$tmp/ds"
cc -I"$src/include" "$tmp/ck.c" -L"$build/lib" -lember -Wl,-rpath,"$build/lib" -o "$tmp/ck"
cp "$("$tmp/ck" "$tmp/ds")" "$d/seed_dataset_range40"

# ---- stream_log: option byte + the file without its checksum line (the
# harness appends it)
d=$corpus/stream_log
mkdir -p "$d"
rm -f "$d"/seed_*
mkdir -p "$tmp/src" "$tmp/loc"
printf 'a b\nc a\n' >"$tmp/src/f1.txt"
printf 'b\n' >"$tmp/src/f%%20two.txt"
"$bin/ember-stream-wordcount" --source "$tmp/src" --checkpoint-location "$tmp/loc" \
  --sink "$tmp/out" --trigger once --quiet >/dev/null
nochk() { sed '$d' "$1"; }
prefix '\000' <(nochk "$tmp/loc/metadata") "$d/seed_metadata"
b=$(ls "$tmp/loc/offsets" | sort -n | tail -1)
prefix "\\$(printf '%03o' $((1 + 4 * b)))" <(nochk "$tmp/loc/offsets/$b") "$d/seed_offsets"
prefix "\\$(printf '%03o' $((2 + 4 * b)))" <(nochk "$tmp/loc/commits/$b") "$d/seed_commits"
prefix '\200' "$tmp/loc/metadata" "$d/seed_metadata_raw"
prefix '\100' <(nochk "$tmp/out/.ember-sink") "$d/seed_sink_owner"
snap=$(find "$tmp/loc" -name '*.h5' | sort | tail -1)
[ -n "$snap" ] || { echo "make_seeds: the stream wrote no state snapshot" >&2; exit 1; }
prefix '\003' "$snap" "$d/seed_state_snapshot"
# ---- metrics: a --metrics file as is (as written, resumed, and cut)
d=$corpus/metrics
mkdir -p "$d"
rm -f "$d"/seed_*
"$bin/ember-pagerank" --input "$src/data/karate.el" --undirected --quiet \
  --checkpoint-dir "$tmp/prm" --checkpoint-every 3 --iterations 6 --top 1 \
  --metrics "$tmp/m.jsonl" >/dev/null
"$bin/ember-pagerank" --input "$src/data/karate.el" --undirected --quiet \
  --checkpoint-dir "$tmp/prm" --checkpoint-every 3 --iterations 9 --top 1 \
  --metrics "$tmp/m.jsonl" >/dev/null
cp "$tmp/m.jsonl" "$d/seed_pagerank_resumed"
head -c -20 "$tmp/m.jsonl" >"$d/seed_cut_last_line"
printf '{"iteration": 1, "seconds": 0.5, "shift": null, "checkpoint": true, "checkpoint_bytes": 9}\n{"iteration": 2, "seconds": 1e-3, "shift": 2.5e-1}\n{"iteration": 2, "shift": 0.125, "note": "a \\"quoted\\" value"}\n{}\n\n{"event": "resumed", "from_iteration": 1}\n' >"$d/seed_restart_redone"

# ---- cli: option byte (0 duration, 1 spec, 2 argv split at NUL) + text
d=$corpus/cli
mkdir -p "$d"
rm -f "$d"/seed_*
printf '\000%s' 90s >"$d/seed_duration_unit"
printf '\000%s' 1-02:03:04 >"$d/seed_duration_slurm_days"
printf '\000%s' 30:00 >"$d/seed_duration_mm_ss"
printf '\000%s' 1.5e1m >"$d/seed_duration_exponent"
printf '\001%s' 'out/r.h5:/ranks/v' >"$d/seed_spec_dataset"
printf '\001%s' 'a:/b.h5:/c' >"$d/seed_spec_two_colons"
printf '\002--input\000g.el\000--iterations\0005\000--deadline\0001-00:30\000--checkpoint-dir\000ck\000--keep=3\000--rate=0.25\000--mode\000exact\000--offset\000-4\000--count\000999\000pos' >"$d/seed_argv_run"
printf '\002--tolerance\0001e-9\000--partitions\00016\000--threads\0002\000--seed\00018446744073709551615\000--name\000x\000--flag\000-o\000out.h5:/r' >"$d/seed_argv_values"

# ---- filesum: option byte (0 as is, 1 sealed, 2 sealed and damaged,
# 3 sealed and cut or extended) + file
d=$corpus/filesum
mkdir -p "$d"
rm -f "$d"/seed_*
prefix '\000' "$corpus/checkpoint/seed_dataset_range40" "$d/seed_sealed_checkpoint"
head -c 2000 "$src/data/karate.el" >"$tmp/plain"
prefix '\001' "$tmp/plain" "$d/seed_seal"
prefix '\016' "$tmp/plain" "$d/seed_seal_damage"
prefix '\233' "$tmp/plain" "$d/seed_seal_cut"
prefix '\000' "$tmp/karate.h5" "$d/seed_graph_h5"

# ---- stream_source: option byte, separator byte, files split at it
d=$corpus/stream_source
mkdir -p "$d"
rm -f "$d"/seed_*
printf '\003|a b\nc a\n|b\n|hello world\r\nno end|\r\n\n' >"$d/seed_four_files"
printf '\224|the quick\nbrown fox\n|jumps' >"$d/seed_two_files_ignored_8parts"
printf '\041|grown\n' >"$d/seed_appended"
printf '\142|one\n|cut' >"$d/seed_cut"
printf '\141|x|removed\n' >"$d/seed_removed"
# ---- inspect: option byte (1 sealed by the harness, 2 --json, 4 named as
# an edit copy) + file
d=$corpus/inspect
mkdir -p "$d"
rm -f "$d"/seed_*
prefix '\002' "$corpus/checkpoint/seed_pagerank_karate" "$d/seed_checkpoint_json"
prefix '\000' "$corpus/checkpoint/seed_dataset_range40" "$d/seed_dataset_text"
prefix '\003' "$tmp/karate.h5" "$d/seed_graph_sealed_json"
"$bin/ember-pagerank" --input "$src/data/karate.el" --undirected --quiet \
  --iterations 5 --output "$tmp/ranks.h5" >/dev/null
prefix '\002' "$tmp/ranks.h5" "$d/seed_ranks_json"
{ head -c 3000 "$corpus/checkpoint/seed_dataset_range40"; printf 'X'
  tail -c +3002 "$corpus/checkpoint/seed_dataset_range40"; } >"$tmp/damaged.h5"
prefix '\006' "$tmp/damaged.h5" "$d/seed_damaged_edit_copy_json"
prefix '\002' "$src/data/karate.el" "$d/seed_text_json"
# ---- h5_write: option byte (what is written, and where) + the existing file
d=$corpus/h5_write
mkdir -p "$d"
rm -f "$d"/seed_*
prefix '\000' "$tmp/karate.h5" "$d/seed_graph_out"
prefix '\003' "$tmp/karate.h5" "$d/seed_graph_csr_refused"
prefix '\001' "$tmp/ranks.h5" "$d/seed_ranks_groups"
prefix '\002' "$corpus/checkpoint/seed_dataset_range40" "$d/seed_checkpoint_attrs"
prefix '\000' "$src/data/karate.el" "$d/seed_not_hdf5"
echo "make_seeds: $(ls "$corpus"/*/seed_* | wc -l) seeds in $corpus"
