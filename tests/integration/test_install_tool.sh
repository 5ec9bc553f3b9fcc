#!/usr/bin/env bash
# An installed ember is a real tool (issue 10): installed into a scratch
# prefix,
#   - every installed program has a man page (share/man/man1), made from its
#     --help by help2man, that `man -l` renders without warnings, naming
#     every flag of its --help; ember(7) renders too and lists the exit
#     codes the programs' --help gives;
#   - every installed program has a bash completion (share/bash-completion/
#     completions) that completes its flags, a flag's values and ember-gen's
#     subcommands;
#   - docs/ and README.md are under share/doc/ember (--help refers to
#     docs/formats.md).
# Run by ctest as integration.test_install_tool (EMBER_BUILD, EMBER_SRC).
set -euo pipefail
: "${EMBER_BUILD:?}" "${EMBER_SRC:?}"
export LC_ALL=C
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-tool.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
fail() { echo "test_install_tool: FAIL: $*" >&2; exit 1; }

command -v man >/dev/null || fail "man is not installed (make deps installs man-db)"
cmake --install "$EMBER_BUILD" --prefix "$prefix" >"$tmp/install.log" 2>&1 \
  || { cat "$tmp/install.log"; fail "cmake --install failed"; }

progs=()
for p in "$prefix"/bin/ember-*; do progs+=("$(basename "$p")"); done
[ "${#progs[@]}" -ge 9 ] || fail "only ${#progs[@]} programs installed: ${progs[*]}"

# ---- docs
for f in README.md formats.md checkpoint-format.md design.md streaming.md; do
  [ -s "$prefix/share/doc/ember/$f" ] || fail "share/doc/ember/$f is not installed"
done

# ---- man pages
render() { # page -> rendered text in $tmp/page.txt; warnings fail
  man --warnings -l "$1" >"$tmp/page.txt" 2>"$tmp/page.err" || fail "man -l $1 failed: $(cat "$tmp/page.err")"
  [ ! -s "$tmp/page.err" ] || fail "man -l $1 warns: $(cat "$tmp/page.err")"
  [ -s "$tmp/page.txt" ] || fail "man -l $1 rendered nothing"
}
for p in "${progs[@]}"; do
  page=$prefix/share/man/man1/$p.1
  [ -f "$page" ] || fail "no man page $page"
  render "$page"
  grep -q "^NAME" "$tmp/page.txt" || fail "$p.1 has no NAME section"
  grep -A1 "^NAME" "$tmp/page.txt" | grep -qE -- "$p +- " || fail "$p.1: NAME does not name $p"
  grep -q "ember(7)" "$tmp/page.txt" || fail "$p.1 does not refer to ember(7)"
  # every flag of --help is on the page: generated from it, it cannot drift
  for f in $("$prefix/bin/$p" --help | grep -E '^[[:space:]]+-' | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u); do
    grep -q -- "$f" "$tmp/page.txt" || fail "$p.1 does not mention $f of its --help"
  done
  echo "man $p.1: ok"
done
render "$prefix/share/man/man7/ember.7"
grep -q "^EXIT STATUS" "$tmp/page.txt" || fail "ember.7 has no EXIT STATUS section"
# the exit codes the programs state are the ones ember(7) documents
codes=$("$prefix/bin/ember-pagerank" --help | grep -i "exit status" | grep -oE '\b(0|1|2|75)\b' | sort -u)
[ -n "$codes" ] || fail "ember-pagerank --help gives no exit codes"
for c in $codes; do
  sed -n '/^EXIT STATUS/,/^[A-Z]/p' "$tmp/page.txt" | grep -qE "^ +$c\b" \
    || fail "ember.7 does not document exit status $c"
done
grep -q "pkg-config --cflags --libs ember" "$tmp/page.txt" || fail "ember.7 does not say how to link"
echo "man ember.7: ok"

# ---- bash completion
comp=$prefix/share/bash-completion/completions
for p in "${progs[@]}"; do
  [ -f "$comp/$p" ] || fail "no bash completion $comp/$p"
done
complete_words() { # prog word... -> COMPREPLY of the last word, one a line
  local prog=$1; shift
  bash -c '
    source "$1"; shift
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
    fn=$(complete -p "$1" | sed -E "s/.*-F ([^ ]+) .*/\1/")
    "$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf "%s\n" "${COMPREPLY[@]}"' _ "$comp/$prog" "$prog" "$@"
}
got=$(complete_words ember-pagerank --checkpoint-e)
[ "$got" = "--checkpoint-every" ] || fail "ember-pagerank --checkpoint-e completes to '$got'"
got=$(complete_words ember-pagerank --checkpoint | tr '\n' ' ')
for f in --checkpoint-dir --checkpoint-every --checkpoint-seconds --checkpoint-async --checkpoint-sync; do
  grep -q -- "$f" <<<"$got" || fail "ember-pagerank --checkpoint does not offer $f: $got"
done
got=$(complete_words ember-pagerank --resume "" | tr '\n' ' ')
[ "$got" = "auto never require " ] || fail "ember-pagerank --resume completes to '$got'"
got=$(complete_words ember-gen "" | tr '\n' ' ')
[ "$got" = "kron blobs " ] || fail "ember-gen's subcommands complete to '$got'"
got=$(complete_words ember-inspect --pl)
[ "$got" = "--plot" ] || fail "ember-inspect --pl completes to '$got'"
# every flag of every program's --help completes
for p in "${progs[@]}"; do
  all=$(complete_words "$p" -- | sort -u)
  for f in $("$prefix/bin/$p" --help | grep -E '^[[:space:]]+-' | sed -E 's/^[[:space:]]+//; s/[[:space:]]{2,}.*$//' | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u); do
    grep -qx -- "$f" <<<"$all" || fail "$p: $f of --help does not complete"
  done
done
echo "test_install_tool: PASS"
