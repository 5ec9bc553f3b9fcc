# mpi_lib.bash: sourced by tests/mpi/test_*.sh (not a test itself).
#
# Environment (set by CMake for the ctest tests mpi.<name>, label mpi, only
# in the MPI build): EMBER_BIN (the MPI build's programs), EMBER_SERIAL_BIN
# (the serial build's programs: outputs are compared against them),
# EMBER_SRC (the source tree).
set -euo pipefail
: "${EMBER_BIN:?}" "${EMBER_SERIAL_BIN:?}" "${EMBER_SRC:?}"
export LC_ALL=C
# Outputs record when they were made (created); a fixed clock lets cmp
# compare the files of two runs.
export SOURCE_DATE_EPOCH=1700000000
bin=$EMBER_BIN
sbin=$EMBER_SERIAL_BIN
src=$EMBER_SRC
for p in ember-pagerank ember-gen; do
    [ -x "$sbin/$p" ] || { echo "FAIL: no serial build at $sbin (make build)" >&2; exit 1; }
done
command -v mpirun >/dev/null || { echo "FAIL: no mpirun (make deps)" >&2; exit 1; }

# No ssh here; root needs Open MPI's consent; more ranks than cores.
export OMPI_MCA_plm_rsh_agent=false
if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

# Ranks x threads exceed the 2 cores here: OpenMP threads that spin while
# they wait make an oversubscribed run 30-60 times slower (300 PageRank
# iterations on 3 ranks x 2 threads: 91 s spinning, 1.4 s passive).
export OMP_WAIT_POLICY=passive

fail() { echo "FAIL: $*" >&2; exit 1; }

# mpi N T PROGRAM ARGS...: PROGRAM on N ranks with T OpenMP threads each,
# in the foreground; its exit status is the job's.
mpi() {
    local n=$1 t=$2
    shift 2
    OMP_NUM_THREADS=$t mpirun --oversubscribe --bind-to none --timeout 120 \
        -x OMP_NUM_THREADS -x OMP_WAIT_POLICY -n "$n" "$@"
}

# mpi_bg N T PROGRAM ARGS...: the same in the background, in a session of
# its own (setsid), so that kill_job can SIGKILL mpirun and every rank it
# started at once. Sets job_pid (the session leader: mpirun).
mpi_bg() {
    local n=$1 t=$2
    shift 2
    OMP_NUM_THREADS=$t setsid mpirun --oversubscribe --bind-to none \
        --timeout 120 -x OMP_NUM_THREADS -x OMP_WAIT_POLICY -n "$n" "$@" &
    job_pid=$!
}

# kill_job: SIGKILL the whole job at once: mpirun and every rank. Open MPI
# gives each rank a process group of its own, but they stay in mpirun's
# session, so one kill of every pid of the session hits all of them.
kill_job() {
    local pids
    pids=$(pgrep -s "$job_pid" || true)
    kill -9 $job_pid $pids 2>/dev/null || true
    wait "$job_pid" 2>/dev/null || true
    for _ in $(seq 50); do
        pids=$(pgrep -s "$job_pid" || true)
        [ -z "$pids" ] && return 0
        kill -9 $pids 2>/dev/null || true
        sleep 0.1
    done
    fail "ranks of job $job_pid still running after SIGKILL"
}

# same A B: identical files (a diff of their text on failure).
same() {
    cmp -s "$1" "$2" && return 0
    if command -v h5dump >/dev/null && [[ $1 == *.h5 ]]; then
        diff <(h5dump "$1" 2>&1) <(h5dump "$2" 2>&1) | head -20 >&2
    else
        diff "$1" "$2" | head -20 >&2
    fi
    fail "$1 and $2 differ"
}

# The last iteration a metrics file records (0 when none).
last_iteration() {
    local it=""
    [ -f "$1" ] && it=$(sed -n 's/^{"iteration": \([0-9]*\),.*/\1/p' "$1" | tail -n 1)
    echo "${it:-0}"
}
