#!/usr/bin/env bash
# Install ember into a scratch prefix and build a small consumer against it
# twice, once through the CMake package (find_package(ember)) and once
# through pkg-config (ember.pc), then run both. Also checks that installed
# programs find the installed libember by themselves (RPATH $ORIGIN/../lib)
# and run without LD_LIBRARY_PATH; that the exported target lists its
# include directory once; and that `cc x.c $(pkg-config --cflags --libs
# ember)` alone builds an OpenMP-using consumer that runs without
# LD_LIBRARY_PATH (-fopenmp in Cflags and Libs, an rpath outside /usr).
# Run by ctest as integration.test_install with EMBER_BUILD set.
set -euo pipefail

: "${EMBER_BUILD:?EMBER_BUILD must point at the ember build tree}"
CC=${CC:-cc}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

fail() { echo "test_install: FAIL: $*" >&2; exit 1; }

echo "== cmake --install $EMBER_BUILD --prefix $prefix"
cmake --install "$EMBER_BUILD" --prefix "$prefix" >"$tmp/install.log" 2>&1 \
  || { cat "$tmp/install.log"; fail "cmake --install failed"; }

lib=$(find "$prefix" -name 'libember.so' | head -n 1)
[ -n "$lib" ] || fail "no libember.so under $prefix"
libdir=$(dirname "$lib")
[ -f "$prefix/include/ember.h" ] || fail "no include/ember.h under $prefix"
[ -f "$libdir/pkgconfig/ember.pc" ] || fail "no ember.pc in $libdir/pkgconfig"
[ -f "$libdir/cmake/ember/emberConfig.cmake" ] || fail "no emberConfig.cmake"
[ -f "$libdir/cmake/ember/emberConfigVersion.cmake" ] || fail "no emberConfigVersion.cmake"

# Installed programs must run without LD_LIBRARY_PATH and load the
# installed library, not the build tree's.
for prog in "$prefix"/bin/ember-*; do
  [ -e "$prog" ] || continue
  resolved=$(ldd "$prog" | awk '/libember\.so/ { print $3 }')
  case "$resolved" in
    "$prefix"/*) ;;
    *) ldd "$prog" >&2; fail "$(basename "$prog") loads libember from '$resolved'" ;;
  esac
done

# Run one installed program for real, with no LD_LIBRARY_PATH at all.
: "${EMBER_SRC:?EMBER_SRC must point at the ember source tree}"
env -u LD_LIBRARY_PATH "$prefix/bin/ember-pagerank" --input "$EMBER_SRC/data/karate.el" \
  --undirected --quiet --output "$tmp/ranks.csv" \
  || fail "installed ember-pagerank failed without LD_LIBRARY_PATH"
[ "$(grep -c '^[0-9]' "$tmp/ranks.csv")" -eq 34 ] || fail "installed ember-pagerank: not 34 ranks"

# The exported target names its include directory once.
targets=$libdir/cmake/ember/emberTargets.cmake
incl=$(grep 'INTERFACE_INCLUDE_DIRECTORIES' "$targets" | head -n 1)
[ -n "$incl" ] || fail "no INTERFACE_INCLUDE_DIRECTORIES in $targets"
n=$(grep -o '/include' <<<"$incl" | wc -l)
[ "$n" -eq 1 ] || fail "the exported target lists its include directory $n times: $incl"

src=$tmp/consumer
mkdir -p "$src"
cat >"$src/consumer.c" <<'C'
#include <stdio.h>
#include <ember.h>

int main(void)
{
    const char *msg = ember_strerror(0);
    if (msg == NULL || msg[0] == '\0')
        return 1;
    printf("ember_strerror(0) = %s\n", msg);
    return 0;
}
C
cat >"$src/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.18)
project(ember_consumer LANGUAGES C)
find_package(ember 0.2 REQUIRED)
get_filename_component(_found "${ember_DIR}" REALPATH)
get_filename_component(_want "${EXPECTED_PREFIX}" REALPATH)
string(FIND "${_found}" "${_want}/" _at)
if(NOT _at EQUAL 0)
  message(FATAL_ERROR "found ember in ${ember_DIR}, expected under ${EXPECTED_PREFIX}")
endif()
add_executable(consumer consumer.c)
target_link_libraries(consumer PRIVATE ember::ember)
CMAKE

echo "== consumer with find_package(ember)"
cmake -S "$src" -B "$tmp/build-cmake" -DCMAKE_PREFIX_PATH="$prefix" \
  -DEXPECTED_PREFIX="$prefix" -DCMAKE_C_COMPILER="$CC" >"$tmp/cmake.log" 2>&1 \
  || { cat "$tmp/cmake.log"; fail "consumer configure (find_package) failed"; }
cmake --build "$tmp/build-cmake" >"$tmp/build.log" 2>&1 \
  || { cat "$tmp/build.log"; fail "consumer build (find_package) failed"; }
out=$(LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$tmp/build-cmake/consumer") \
  || fail "consumer (find_package) exited with $?"
echo "$out"
[ -n "$out" ] || fail "consumer (find_package) printed nothing"

echo "== consumer with pkg-config alone"
cat >"$src/omp_consumer.c" <<'C'
#include <stdio.h>
#include <ember.h>
#include <omp.h>

/* Needs -fopenmp from ember.pc's Cflags (the pragma, _OPENMP) and Libs. */
int main(void)
{
#ifndef _OPENMP
#error "ember.pc's Cflags do not enable OpenMP"
#endif
    int n = 0;
#pragma omp parallel reduction(+ : n)
    n += 1;
    printf("%d threads; ember_strerror(0) = %s\n", n, ember_strerror(0));
    return n >= 1 && omp_get_max_threads() >= 1 ? 0 : 1;
}
C
export PKG_CONFIG_PATH="$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
pkg-config --exists --print-errors ember || fail "pkg-config cannot use ember.pc"
pc_prefix=$(pkg-config --variable=prefix ember)
[ "$(cd "$pc_prefix" && pwd -P)" = "$(cd "$prefix" && pwd -P)" ] \
  || fail "ember.pc prefix '$pc_prefix' is not $prefix"
pkg-config --static --libs ember >/dev/null || fail "pkg-config --static --libs ember failed"
pkg-config --cflags ember | grep -q -- '-fopenmp' || fail "ember.pc Cflags lack -fopenmp: $(pkg-config --cflags ember)"
# shellcheck disable=SC2046  # word splitting of pkg-config output is wanted
"$CC" -o "$tmp/omp_consumer" "$src/omp_consumer.c" $(pkg-config --cflags --libs ember) \
  || fail "cc x.c \$(pkg-config --cflags --libs ember) failed"
out=$(env -u LD_LIBRARY_PATH "$tmp/omp_consumer") \
  || fail "the pkg-config consumer does not run without LD_LIBRARY_PATH"
echo "$out"
resolved=$(env -u LD_LIBRARY_PATH ldd "$tmp/omp_consumer" | awk '/libember\.so/ { print $3 }')
case "$resolved" in
  "$prefix"/* | "$libdir"/*) ;;
  *) fail "the pkg-config consumer loads libember from '$resolved'" ;;
esac
# shellcheck disable=SC2046  # word splitting of pkg-config output is wanted
"$CC" -o "$tmp/consumer_pc" "$src/consumer.c" \
  $(pkg-config --cflags ember) $(pkg-config --libs ember) \
  || fail "consumer build (pkg-config) failed"
out=$(LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$tmp/consumer_pc") \
  || fail "consumer (pkg-config) exited with $?"
echo "$out"
[ -n "$out" ] || fail "consumer (pkg-config) printed nothing"

echo "test_install: PASS"
