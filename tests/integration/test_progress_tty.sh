#!/usr/bin/env bash
# The progress line fits the terminal (issue 10 §3), checked under a
# pseudo-terminal (python3's pty module): every redraw of the line, at 80
# and at 40 columns, is narrower than the terminal, so "\r" redraws it in
# place instead of scrolling; a terminal that reports no size falls back
# to $COLUMNS, then 80. The ETA appears where the run's length is known
# (PageRank with --tolerance 0 runs every iteration) and never for a run
# that stops at a fixpoint (ember-cc); counts print as whole numbers. A log
# (stderr not a terminal) gets the whole line whatever $COLUMNS says.
set -euo pipefail
bin=${EMBER_BIN:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3) || fail "python3 is needed for the pty"

# onpty.py COLS CMD...: runs CMD with stderr on a pty of COLS columns (0: no
# size), prints what the terminal received
cat > onpty.py <<'EOF'
import fcntl, os, pty, struct, subprocess, sys, termios
cols = int(sys.argv[1])
master, slave = pty.openpty()
fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24 if cols else 0, cols, 0, 0))
both = os.environ.get("ONPTY_STDOUT") == "1" # stdout on the terminal too
p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL,
                     stdout=slave if both else subprocess.DEVNULL, stderr=slave)
os.close(slave)
out = b""
while True:
    try:
        d = os.read(master, 65536)
    except OSError:
        break
    if not d:
        break
    out += d
sys.stdout.buffer.write(out)
sys.exit(p.wait())
EOF

# redraws FILE: each progress redraw, one a line (split at \r and \n,
# the erase-line sequence removed)
redraws() {
    tr '\r' '\n' < "$1" | sed 's/\x1b\[K//g' | grep 'iteration [0-9]' || true
}
# fits FILE WIDTH: every redraw is narrower than WIDTH columns, and there
# are at least 2 (the first iteration's and the last's always print)
fits() {
    redraws "$1" > r.txt
    [ "$(wc -l < r.txt)" -ge 2 ] || fail "$1: fewer than 2 progress redraws: $(cat -v "$1")"
    awk -v w="$2" 'length($0) >= w { print "too wide (" length($0) "): " $0; bad = 1 }
                   END { exit bad }' r.txt || fail "$1: a progress line does not fit $2 columns"
}

"$bin/ember-gen" kron --scale 12 --output g.h5 > /dev/null
pr=("$bin/ember-pagerank" --input g.h5 --tolerance 0 --iterations 40
    --checkpoint-dir ck --checkpoint-every 10 --resume never)

"$py" onpty.py 80 "${pr[@]}" > pr80.txt || fail "pagerank under a pty: exit $?"
fits pr80.txt 80
redraws pr80.txt | head -n 1 | grep -q 'iteration 1/40 .*ETA' ||
    fail "no ETA for a run of known length: $(redraws pr80.txt | head -n 1)"

"$py" onpty.py 40 "${pr[@]}" > pr40.txt || fail "pagerank at 40 columns: exit $?"
fits pr40.txt 40
redraws pr40.txt | grep -q 'iteration 40/40  residual [0-9.e+-]*$' ||
    fail "at 40 columns the iteration and residual must stay: $(redraws pr40.txt)"

# no size from the terminal: $COLUMNS, else 80
COLUMNS=50 "$py" onpty.py 0 "${pr[@]}" > pr0.txt || fail "pagerank, no size: exit $?"
fits pr0.txt 50
env -u COLUMNS "$py" onpty.py 0 "${pr[@]}" > pr0b.txt || fail "pagerank, no size: exit $?"
fits pr0b.txt 80

# a fixpoint run: no ETA, counts as whole numbers
"$py" onpty.py 80 "$bin/ember-cc" --input g.h5 > cc.txt || fail "cc under a pty: exit $?"
fits cc.txt 80
! redraws cc.txt | grep -q ETA || fail "ember-cc shows an ETA: $(redraws cc.txt)"
redraws cc.txt | grep -q 'changed [0-9][0-9]*\( \|$\)' || fail "changed count: $(redraws cc.txt)"
! redraws cc.txt | grep -q 'e[+-][0-9]' || fail "a count printed as a float: $(redraws cc.txt)"

# stdout on the same terminal: the result line starts a line of its own,
# though the final checkpoint is still being written when it prints (the
# live line is cleared first; the last progress line follows the result)
ONPTY_STDOUT=1 "$py" onpty.py 80 "$bin/ember-cc" --input g.h5 --checkpoint-dir ckcc \
    > ccout.txt || fail "cc with stdout on the pty: exit $?"
tr '\r' '\n' < ccout.txt | sed 's/\x1b\[K//g' | grep -q '^ember-cc: [0-9]* vertices' ||
    fail "the result shares a line with the progress: $(cat -v ccout.txt)"
tr '\r' '\n' < ccout.txt | sed 's/\x1b\[K//g' | grep -q 'checkpoint at [0-9]' ||
    fail "no final progress line with its checkpoint: $(cat -v ccout.txt)"

# a log gets every field, one line per report, whatever $COLUMNS says
COLUMNS=40 "${pr[@]}" 2> log.txt > /dev/null
grep -q '^ember-pagerank: iteration 40/40  residual .* it/s  checkpoint at 40 ' log.txt ||
    fail "the log lost fields: $(cat log.txt)"
echo "test_progress_tty: progress fits 80, 40, \$COLUMNS=50 and default columns"
