#!/usr/bin/env bash
# Pictures (issue 10 §5) and the history they are drawn from.
#   - --stop-at N stops after iteration N with a checkpoint (exit 75) and the
#     same command resumes; the metrics file records a "resumed" event.
#   - Checkpoints record the run's history (/scalars/history): one row per
#     iteration with its residual, checkpoint and resume flags; past 1024
#     rows the stride doubles (ember-maps, 3000 iterations: 750 rows,
#     stride 4).
#   - ember-inspect --plot METRICS and --plot DIR write an SVG through
#     gnuplot, ember-maps --lineage-svg through Graphviz dot, when they are
#     installed; with the tool missing from PATH they refuse with exit 2
#     and the package to install, and write nothing. File names with quotes
#     and spaces are safe (never put into a script). A plot never writes
#     through OUT.tmp, and one whose renderer was cut short (a full disk)
#     exits 1 and keeps the previous picture.
#   - Bad sources and flags exit 2 naming the file, line or flag.
set -euo pipefail
: "${EMBER_BIN:?}" "${EMBER_SRC:?}"
export LC_ALL=C
T=$(mktemp -d "${TMPDIR:-/tmp}/ember-plot.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"
fail() { echo "test_plot: FAIL: $*" >&2; exit 1; }
pr=$EMBER_BIN/ember-pagerank
ins=$EMBER_BIN/ember-inspect
maps=$EMBER_BIN/ember-maps
st() { set +e; "$@" >out.txt 2>&1; echo $?; set -e; }
# the numbers of an f64 array, one a line
hist() {
  h5dump -m %.17g -d /scalars/history "$1" |
    awk '/^ *\([0-9]+\):/ { sub(/^ *\([0-9]+\): */, ""); n = split($0, a, /, */);
                             for (i = 1; i <= n; i++) if (a[i] != "") print a[i] }'
}
row() { # numbers-file k -> "iteration value seconds flags" of row k (0-based)
  awk -v k="$2" 'NR > 2 && int((NR - 3) / 4) == k { printf "%s ", $0 } END { print "" }' "$1"
}

# ---- stop, resume, history
args=(--input "$EMBER_SRC/data/karate.el" --undirected --output r.csv
      --checkpoint-dir ck --checkpoint-every 5 --metrics m.jsonl --quiet)
s=$(st "$pr" "${args[@]}" --stop-at 12)
[ "$s" -eq 75 ] || fail "--stop-at 12: exit $s: $(cat out.txt)"
[ -f ck/ckpt-000000000012.h5 ] || fail "--stop-at 12 wrote no checkpoint at 12: $(ls ck)"
[ ! -e r.csv ] || fail "the stopped run wrote its output"
s=$(st "$pr" "${args[@]}" --stop-at 12)
[ "$s" -eq 0 ] || fail "resume: exit $s: $(cat out.txt)"
grep -q '^{"event": "resumed", "from_iteration": 12}$' m.jsonl || fail "no resumed event: $(cat m.jsonl)"
n=$(grep -c '"iteration": [0-9]*, "seconds"' m.jsonl)
last=$(ls ck/ckpt-*.h5 | tail -n 1)
hist "$last" >last.hist
rows=$(sed -n 1p last.hist)
[ "$rows" = "$n" ] || fail "history has $rows rows, the metrics $n iterations"
[ "$(sed -n 2p last.hist)" = 1 ] || fail "history stride is not 1"
for k in $(seq 0 $((n - 1))); do
  read -r it val _ flags <<<"$(row last.hist "$k")"
  [ "$it" = $((k + 1)) ] || fail "history row $k is iteration $it"
  want=$(grep "\"iteration\": $it, " m.jsonl | sed -E 's/.*"residual": ([^,]*),.*/\1/')
  awk -v a="$val" -v b="$want" 'BEGIN { exit !(a == b) }' \
    || fail "history row $k: residual $val, metrics $want"
  case $it in
    5 | 10 | 12 | 15 | 20 | 25) w=1 ;; # checkpoints (12: --stop-at)
    13) w=2 ;;                        # the first iteration after the resume
    *) w=0 ;;
  esac
  [ "$it" -eq "$n" ] && w=0 # the final checkpoint is the file itself
  [ "$flags" = "$w" ] || fail "history row $k (iteration $it): flags $flags, want $w"
done
"$ins" "$last" >ins.txt || fail "ember-inspect $last: $(cat ins.txt)"
grep -q '^ *info.history=residual$' ins.txt \
  || fail "the checkpoint does not record info.history=residual"

rm -rf hk
"$maps" --n 10 --maps 3000 --checkpoint-dir hk --checkpoint-every 1000 --quiet >/dev/null
hist hk/ckpt-000000003000.h5 >h.hist
[ "$(sed -n 1p h.hist)" = 750 ] || fail "3000 iterations: $(sed -n 1p h.hist) rows, want 750"
[ "$(sed -n 2p h.hist)" = 4 ] || fail "3000 iterations: stride $(sed -n 2p h.hist), want 4"
awk 'NR > 2 && (NR - 3) % 4 == 0 && k < 750 { k++; if ($1 != 4 * k) { print "row " k - 1 ": " $1; exit 1 } }' h.hist \
  || fail "decimated rows are not every 4th iteration"
awk 'NR > 2 + 4 * 750 && $1 != 0 { exit 1 }' h.hist || fail "rows past the used ones are not zero"
read -r it _ _ flags <<<"$(row h.hist 249)"
[ "$it" = 1000 ] && [ "$flags" = 1 ] || fail "row 249: iteration $it flags $flags, want 1000 and 1"

# ---- refusals
s=$(st "$pr" --input "$EMBER_SRC/data/karate.el" --stop-at 3)
[ "$s" -eq 2 ] && grep -q -- "--stop-at need --checkpoint-dir" out.txt || fail "--stop-at without a dir: $s $(cat out.txt)"
printf '{"iteration": 1, "seconds": 0.1, "residual": 0.5}\nnot json\n' >bad.jsonl
s=$(st "$ins" --plot bad.jsonl --output x.svg)
if command -v gnuplot >/dev/null; then
  [ "$s" -eq 2 ] && grep -q "bad.jsonl:2:" out.txt || fail "bad metrics line: exit $s: $(cat out.txt)"
  : >empty.jsonl
  s=$(st "$ins" --plot empty.jsonl --output x.svg)
  [ "$s" -eq 2 ] && grep -q "no iteration lines" out.txt || fail "empty metrics: exit $s: $(cat out.txt)"
  mkdir nock
  s=$(st "$ins" --plot nock --output x.svg)
  [ "$s" -eq 2 ] && grep -q "no loop checkpoints" out.txt || fail "empty dir: exit $s: $(cat out.txt)"
  s=$(st "$ins" --plot missing.jsonl --output x.svg)
  [ "$s" -eq 2 ] && grep -q "missing.jsonl" out.txt || fail "missing source: exit $s: $(cat out.txt)"
  printf '{"iteration": 1, "seconds": 0.1, "residual": null}\n' >nan.jsonl
  s=$(st "$ins" --plot nan.jsonl --output x.svg)
  [ "$s" -eq 2 ] && grep -q "no iteration has a finite value" out.txt || fail "all-null metrics: exit $s: $(cat out.txt)"
  [ ! -e x.svg ] || fail "a refused plot left x.svg"
fi
s=$(st "$ins" --plot m.jsonl)
[ "$s" -eq 2 ] && grep -q -- "--output FILE.svg" out.txt || fail "--plot without --output: $s $(cat out.txt)"
s=$(st "$ins" --plot m.jsonl --output x.png)
[ "$s" -eq 2 ] || fail "--output x.png: exit $s"
s=$(st "$ins" --output x.svg ck)
[ "$s" -eq 2 ] || fail "--output without --plot: exit $s"

# ---- renderers missing: exit 2, the package named, nothing written
s=$(st env PATH=/nonexistent "$ins" --plot m.jsonl --output none.svg)
[ "$s" -eq 2 ] && grep -q "apt-get install gnuplot-nox" out.txt || fail "no gnuplot: exit $s: $(cat out.txt)"
s=$(st env PATH=/nonexistent "$maps" --n 100 --maps 3 --lineage-svg none.svg)
[ "$s" -eq 2 ] && grep -q "apt-get install graphviz" out.txt || fail "no dot: exit $s: $(cat out.txt)"
ls none.svg* >/dev/null 2>&1 && fail "a missing renderer left a file"

# ---- renderers present: real SVGs
is_svg() {
  [ -s "$1" ] && head -c 4096 "$1" | grep -q '<svg' && tail -c 64 "$1" | grep -q '</svg>' \
    || fail "$1 is not an SVG"
}
if command -v gnuplot >/dev/null; then
  out="conv a'b\"c \$(touch pwned).svg"
  s=$(st "$ins" --plot m.jsonl --output "$out")
  [ "$s" -eq 0 ] || fail "--plot m.jsonl: exit $s: $(cat out.txt)"
  is_svg "$out"
  [ ! -e pwned ] || fail "a file name ran a command"
  for w in "residual" "checkpoint written" "resumed" "seconds per iteration" "m.jsonl"; do
    grep -q "$w" "$out" || fail "the metrics plot has no '$w'"
  done
  # A straight run without checkpoints: no checkpoint marks, no resume
  # lines (their colours, gnuplot's rgb(...), appear only in the other).
  "$pr" --input "$EMBER_SRC/data/karate.el" --undirected --quiet -o s.csv --metrics s.jsonl
  s=$(st "$ins" --plot s.jsonl -o straight.svg)
  [ "$s" -eq 0 ] && is_svg straight.svg || fail "--plot s.jsonl: exit $s: $(cat out.txt)"
  [ ! -s out.txt ] || fail "gnuplot warned on a straight run: $(cat out.txt)"
  red() { grep -o 'rgb(214, *39, *40)' "$1" | wc -l; }
  green() { grep -o 'rgb( *44, *160, *44)' "$1" | wc -l; }
  [ "$(red straight.svg)" -eq 0 ] && [ "$(green straight.svg)" -eq 0 ] \
    || fail "a straight run's plot shows resumes or checkpoints"
  [ "$(red "$out")" -ge 3 ] || fail "the resumed run's plot draws no resume line"
  [ "$(green "$out")" -ge 6 ] || fail "the resumed run's plot marks no checkpoints"
  grep -q "checkpoint written" straight.svg && fail "a straight run's plot has a checkpoint key"
  s=$(st "$ins" --plot ck -o dir.svg)
  [ "$s" -eq 0 ] || fail "--plot ck: exit $s: $(cat out.txt)"
  is_svg dir.svg
  for w in "ember-pagerank" "residual" "resumed" "checkpoint written"; do
    grep -q "$w" dir.svg || fail "the checkpoint plot has no '$w'"
  done
  s=$(st "$ins" --plot "$last" --output file.svg)
  [ "$s" -eq 0 ] && is_svg file.svg || fail "--plot FILE: exit $s: $(cat out.txt)"
  # a named file that is not a verifying checkpoint is bad input: exit 2
  cp "$last" damaged.h5
  printf 'X' | dd of=damaged.h5 bs=1 seek=$(( $(stat -c %s damaged.h5) / 2 )) conv=notrunc 2>/dev/null
  s=$(st "$ins" --plot damaged.h5 --output bad.svg)
  [ "$s" -eq 2 ] && grep -q "damaged.h5" out.txt || fail "--plot damaged.h5: exit $s: $(cat out.txt)"
  printf 'not hdf5 at all' >plain.h5
  s=$(st "$ins" --plot plain.h5 --output bad.svg)
  [ "$s" -eq 2 ] && grep -q "plain.h5" out.txt || fail "--plot plain.h5: exit $s: $(cat out.txt)"
  [ ! -e bad.svg ] || fail "a refused plot left bad.svg"
  # A file or link at OUT.tmp is not the plot's temporary: left alone.
  echo "my notes" >notes.txt
  ln -s notes.txt dir.svg.tmp
  cp dir.svg dir.good
  s=$(st "$ins" --plot m.jsonl -o dir.svg)
  [ "$s" -eq 0 ] && is_svg dir.svg || fail "--plot beside dir.svg.tmp: exit $s: $(cat out.txt)"
  [ "$(cat notes.txt)" = "my notes" ] && [ -L dir.svg.tmp ] || fail "the plot wrote through dir.svg.tmp"
  # The renderer's writes cut short (a full disk: here the file size limit,
  # which gnuplot inherits, and its signal ignored): exit 1, the previous
  # plot kept whole.
  cp dir.svg dir.good
  s=$(set +e; (trap '' XFSZ; ulimit -f 8; exec "$ins" --plot ck -o dir.svg) >out.txt 2>&1; echo $?)
  [ "$s" -eq 1 ] || fail "a plot cut short: exit $s: $(cat out.txt)"
  cmp -s dir.svg dir.good || fail "a plot cut short replaced the previous one"
  ls dir.svg.*.tmp >/dev/null 2>&1 && fail "a plot cut short left its temporary"
  echo "gnuplot: plots drawn"
else
  echo "test_plot: gnuplot is not installed: checked the refusal only (apt-get install gnuplot-nox)"
fi
if command -v dot >/dev/null; then
  s=$(st "$maps" --n 100 --maps 3 --lineage-svg "lin 'x'.svg")
  [ "$s" -eq 0 ] || fail "--lineage-svg: exit $s: $(cat out.txt)"
  is_svg "lin 'x'.svg"
  [ "$(grep -c 'map #' "lin 'x'.svg")" -ge 3 ] || fail "the lineage picture shows fewer than 3 maps"
  grep -q "range" "lin 'x'.svg" || fail "the lineage picture has no range node"
  echo "dot: lineage drawn"
else
  echo "test_plot: dot is not installed: checked the refusal only (apt-get install graphviz)"
fi
echo "test_plot: PASS"
