#!/usr/bin/env bash
# Runs every libFuzzer harness of a fuzz build for a number of seconds each,
# one after the other, on one worker; exits 1 if any found something.
#
#   bash tests/fuzz/run.sh BUILD_DIR SECONDS [HARNESS...]
#
# Each harness starts from its seed corpus, tests/fuzz/corpus/<h> (read
# only), and keeps the inputs it finds in BUILD_DIR/fuzz-corpus/<h>. A
# finding (crash, sanitizer report, leak, timeout, out-of-memory) is written
# to BUILD_DIR/fuzz-findings/<h>/ and its libFuzzer log kept next to it;
# docs/fuzzing.md says how to reproduce one and make it a regression case.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: run.sh BUILD_DIR SECONDS [HARNESS...]}
seconds=${2:?usage: run.sh BUILD_DIR SECONDS [HARNESS...]}
shift 2
if [ $# -gt 0 ]; then
  harnesses=("$@")
else
  harnesses=()
  for f in "$here"/fuzz_*.c; do
    h=$(basename "$f" .c)
    harnesses+=("${h#fuzz_}")
  done
fi

# Leaks are findings; a report aborts, so the run stops at the first one.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$here/lsan.supp:print_suppressions=0}
# Inputs become files: on tmpfs, a run does ~100x more inputs a second
# than on a journalled disk.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
  export TMPDIR=/dev/shm
fi
# One thread a harness: the machine may be shared, and libFuzzer wants one.
export OMP_NUM_THREADS=1

status=0
for h in "${harnesses[@]}"; do
  bin=$build/fuzz/fuzz_$h
  seeds=$here/corpus/$h
  work=$build/fuzz-corpus/$h
  found=$build/fuzz-findings/$h
  if [ ! -x "$bin" ]; then
    echo "fuzz: $bin is missing (build with make fuzz)" >&2
    status=1
    continue
  fi
  mkdir -p "$work" "$found"
  log=$found/fuzz.log
  echo "fuzz: $h for ${seconds}s (log: $log)"
  # -timeout: an input taking 10 s is a hang. -rss_limit_mb/-malloc_limit_mb:
  # a single allocation of 1 GiB or more is a finding (a damaged size
  # believed). -close_fd_mask=1 silences the programs' stdout.
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -malloc_limit_mb=1024 -print_final_stats=1 -close_fd_mask=1 \
    -artifact_prefix="$found/" "$work" "$seeds" >"$log" 2>&1 &
  pid=$!
  wait "$pid"
  rc=$?
  # A harness that died leaves its input directory (fuzz.c) and, linked
  # with clang's OpenMP, a registration file in /dev/shm.
  rm -rf "${TMPDIR:-/tmp}/ember-fuzz-$pid-"* "/dev/shm/__KMP_REGISTERED_LIB_${pid}_"*
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|^#[0-9]+ +DONE' "$log" | awk '!seen[$0]++' | tail -3 | sed "s/^/fuzz: $h: /"
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
  [ -n "$cov" ] && echo "fuzz: $h: $cov"
  if [ "$rc" -ne 0 ]; then
    echo "fuzz: $h FOUND SOMETHING (exit $rc); findings in $found:" >&2
    ls "$found" | grep -v '^fuzz.log$' | sed 's/^/  /' >&2
    grep -E 'ERROR|SUMMARY|runtime error|fuzz_[a-z_]+:' "$log" | head -8 | sed 's/^/  /' >&2
    status=1
  fi
done
if [ "$status" -ne 0 ]; then
  echo "fuzz: FAILED" >&2
else
  echo "fuzz: no findings"
fi
exit "$status"
