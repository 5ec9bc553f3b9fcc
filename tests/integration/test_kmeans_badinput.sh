#!/usr/bin/env bash
# Bad input to ember-kmeans: each case exits 2 with a message on stderr
# that names the problem (and the file and line where there is one).
set -euo pipefail
: "${EMBER_BIN:?}" "${EMBER_SRC:?}"
export LC_ALL=C
km=$EMBER_BIN/ember-kmeans
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-kmeans-bad.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_kmeans_badinput: FAIL: $*" >&2; exit 1; }
cases=0

# expect2 PATTERN ARGS...: exit status 2 and PATTERN (grep -E) on stderr.
expect2() {
  local pattern=$1; shift
  set +e
  "$km" "$@" --quiet >"$tmp/out" 2>"$tmp/err"
  local st=$?
  set -e
  [ "$st" = 2 ] || { cat "$tmp/err"; fail "ember-kmeans $* exited $st, not 2"; }
  grep -Eq -e "$pattern" "$tmp/err" || { cat "$tmp/err"; fail "ember-kmeans $*: message lacks /$pattern/"; }
  cases=$((cases + 1))
}

printf 'a,b\n1,2\n3,4\n5,6\n' >"$tmp/ok.csv"
: >"$tmp/empty.csv"
printf '# a comment\n\n' >"$tmp/blank.csv"
printf 'a,b\n' >"$tmp/header.csv"
printf 'a,b\n1,2\n3,abc\n' >"$tmp/word.csv"
printf '1,2\n3\n4,5\n' >"$tmp/ragged.csv"
printf '1 2\n3 4 5\n' >"$tmp/ragged-ws.csv"
printf 'a,b\n1,2\nnan,3\n' >"$tmp/nan.csv"
printf 'a,b\n1,2\n3,inf\n' >"$tmp/inf.csv"
printf '1,2,3\n4,5,6\n' >"$tmp/init3.csv"

expect2 'missing\.csv' --input "$tmp/missing.csv" --k 2
# finite values whose squared distances overflow: not a converged run with
# inertia inf (exit 0, as it was)
printf '1.7976931348623157e308,2\n-1.7976931348623157e308,4\n' >"$tmp/huge.csv"
expect2 'huge\.csv: the squared distances overflow' --input "$tmp/huge.csv" --k 1
# a pass where two points overflow against every centroid (their labels
# tie at +inf), though the centroids that follow would give finite ones
printf '0\n1\n1e160\n1e160\n' >"$tmp/huge3.csv"
printf '0\n0.5\n' >"$tmp/huge3-init.csv"
expect2 'huge3\.csv: the squared distances overflow' --input "$tmp/huge3.csv" --init "$tmp/huge3-init.csv" --tolerance 0
printf '3e160,1\n-2e160,1\n1e150,2\n' >"$tmp/huge2.csv"
expect2 'huge2\.csv: the squared distances overflow' --input "$tmp/huge2.csv" --k 2 --init random
# data so small that every squared distance underflows (below about 1e-162
# all are 0): not a converged run of inertia 0 with every point in cluster
# 0 (exit 0, as it was); data just above the limit runs
printf '1e-200,0\n2e-200,0\n1e-199,0\n1.1e-199,0\n' >"$tmp/tiny.csv"
expect2 'tiny\.csv: the squared distances underflow.*spans 1e-199' --input "$tmp/tiny.csv" --k 2
# the same beside a constant column of 1: the spread counts, not the size
printf '1,1e-200\n1,2e-200\n1,1e-199\n1,1.1e-199\n' >"$tmp/offset.csv"
expect2 'offset\.csv: the squared distances underflow' --input "$tmp/offset.csv" --k 2
# subnormal squares: run, with a warning
printf '1e-160,0\n2e-160,0\n1e-159,0\n1.1e-159,0\n' >"$tmp/sub.csv"
"$km" --input "$tmp/sub.csv" --k 2 --quiet >"$tmp/out" 2>"$tmp/err" || fail "sub.csv: exit $?"
grep -q 'sub\.csv: the squared distances are subnormal' "$tmp/err" || fail "sub.csv: $(cat "$tmp/err")"
printf '1e-154,0\n2e-154,0\n1e-153,0\n1.1e-153,0\n' >"$tmp/small.csv"
"$km" --input "$tmp/small.csv" --k 2 --quiet >"$tmp/out" || fail "small.csv: exit $?"
grep -q '^inertia: 9\.99' "$tmp/out" || { cat "$tmp/out"; fail "small.csv: not the inertia 1e-308"; }
expect2 'empty\.csv.*(no data|empty)' --input "$tmp/empty.csv" --k 2
expect2 'blank\.csv.*(no data|empty)' --input "$tmp/blank.csv" --k 2
expect2 'header\.csv.*(no data|empty)' --input "$tmp/header.csv" --k 2
expect2 'word\.csv:3:.*abc.*not a number' --input "$tmp/word.csv" --k 2
expect2 'ragged\.csv:2:.*column' --input "$tmp/ragged.csv" --k 2
expect2 'ragged-ws\.csv:2:.*column' --input "$tmp/ragged-ws.csv" --k 2
expect2 'nan\.csv:3:.*(NaN|finite)' --input "$tmp/nan.csv" --k 1
expect2 'inf\.csv:3:.*(inf|finite)' --input "$tmp/inf.csv" --k 1
expect2 'larger than the number of points \(3\)' --input "$tmp/ok.csv" --k 4
expect2 '--k.*0.*out of range' --input "$tmp/ok.csv" --k 0
expect2 '--k.*not a whole number' --input "$tmp/ok.csv" --k two
expect2 '--k is required' --input "$tmp/ok.csv"
expect2 '--input is required' --k 2
expect2 '--iterations.*-1' --input "$tmp/ok.csv" --k 2 --iterations -1
expect2 '--tolerance.*out of range' --input "$tmp/ok.csv" --k 2 --tolerance -1
expect2 '--tolerance.*nan' --input "$tmp/ok.csv" --k 2 --tolerance nan
expect2 '--threads.*0.*out of range' --input "$tmp/ok.csv" --k 2 --threads 0
expect2 '--init.*nosuch\.csv' --input "$tmp/ok.csv" --k 2 --init "$tmp/nosuch.csv"
expect2 '--init.*3 rows, but --k is 2' --input "$tmp/ok.csv" --k 2 --init "$tmp/ok.csv"
expect2 '--init.*3 numbers.*2 coordinates' --input "$tmp/ok.csv" --init "$tmp/init3.csv"
expect2 '--init.*nan\.csv:3' --input "$tmp/ok.csv" --init "$tmp/nan.csv"
expect2 "unknown option '--bogus'" --input "$tmp/ok.csv" --k 2 --bogus
expect2 'unexpected argument' --input "$tmp/ok.csv" --k 2 extra
expect2 'missing\.h5' --input "$tmp/missing.h5:/points" --k 2

# HDF5 inputs (made with h5import from hdf5-tools, when it is there): NaN
# in the points is refused with the point's index; a missing dataset path
# is named.
if command -v h5import >/dev/null; then
  printf '1.0 2.0\n3.0 4.0\nnan 5.0\n' >"$tmp/nan.txt"
  printf 'PATH points\nINPUT-CLASS TEXTFP\nINPUT-SIZE 64\nRANK 2\nDIMENSION-SIZES 3 2\nOUTPUT-CLASS FP\nOUTPUT-SIZE 64\nOUTPUT-ARCHITECTURE IEEE\nOUTPUT-BYTE-ORDER LE\n' >"$tmp/nan.cfg"
  h5import "$tmp/nan.txt" -c "$tmp/nan.cfg" -o "$tmp/nan.h5" >/dev/null
  expect2 'nan\.h5:/points: point 2 .*NaN' --input "$tmp/nan.h5:/points" --k 1
  expect2 'nan\.h5:/nosuch' --input "$tmp/nan.h5:/nosuch" --k 1
  # Non-finite values named by point and coordinate: an infinity in a
  # small file, and a NaN in the very last value of a large one (4.8 MB,
  # read by the team with preads).
  h5file() { # h5file NAME ROWS: NAME.bin (raw little-endian f64) -> NAME.h5:/points
    printf 'PATH points\nINPUT-CLASS FP\nINPUT-SIZE 64\nINPUT-BYTE-ORDER LE\nRANK 2\n%s\n%s\n' \
      "DIMENSION-SIZES $2 2" 'OUTPUT-CLASS FP' >"$tmp/$1.cfg"
    printf 'OUTPUT-SIZE 64\nOUTPUT-ARCHITECTURE IEEE\nOUTPUT-BYTE-ORDER LE\n' >>"$tmp/$1.cfg"
    h5import "$tmp/$1.bin" -c "$tmp/$1.cfg" -o "$tmp/$1.h5" >/dev/null || fail "h5import $1"
  }
  f64() { # the little-endian bytes of 1.0, +inf or NaN
    case $1 in
      one) printf '\x00\x00\x00\x00\x00\x00\xf0\x3f' ;;
      inf) printf '\x00\x00\x00\x00\x00\x00\xf0\x7f' ;;
      nan) printf '\x00\x00\x00\x00\x00\x00\xf8\x7f' ;;
    esac
  }
  { f64 one; f64 one; f64 one; f64 inf; f64 one; f64 one; } >"$tmp/inf-h5.bin"
  h5file inf-h5 3
  expect2 'inf-h5\.h5:/points: point 1 \(0-based\), coordinate 1 is infinite' \
    --input "$tmp/inf-h5.h5:/points" --k 1
  { head -c $((599999 * 8)) /dev/zero; f64 nan; } >"$tmp/nan-h5.bin"
  h5file nan-h5 300000
  expect2 'nan-h5\.h5:/points: point 299999 \(0-based\), coordinate 1 is NaN' \
    --input "$tmp/nan-h5.h5:/points" --k 1
  # Integer points convert to float64 and run.
  printf '1 2\n3 4\n10 11\n12 13\n' >"$tmp/int.txt"
  printf 'PATH pts\nINPUT-CLASS TEXTIN\nINPUT-SIZE 32\nRANK 2\nDIMENSION-SIZES 4 2\nOUTPUT-CLASS IN\nOUTPUT-SIZE 16\n' >"$tmp/int.cfg"
  h5import "$tmp/int.txt" -c "$tmp/int.cfg" -o "$tmp/int.h5" >/dev/null
  "$km" --input "$tmp/int.h5" --k 2 --quiet --verify >"$tmp/int.out" || fail "int16 HDF5 input"
  grep -q '^inertia: 8$' "$tmp/int.out" || { cat "$tmp/int.out"; fail "int16 HDF5 input: wrong inertia"; }
fi
echo "test_kmeans_badinput: PASS ($cases cases)"
