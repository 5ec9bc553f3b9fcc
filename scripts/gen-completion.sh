#!/usr/bin/env bash
# Writes the bash completion of an ember program from its own --help, so
# the completion cannot drift from the flags (run by the build for every
# program; installed under share/bash-completion/completions/PROGRAM).
#
#   gen-completion.sh PROGRAM_PATH OUT
#
# From the help text it takes:
#   - the flags: every --name in the option column of a line that starts
#     with white space and a dash ("  --resume auto|never|require  ...",
#     "  --help, --version");
#   - the values of a flag whose metavar lists lowercase words
#     (--resume auto|never|require, --format el|mtx|h5);
#   - subcommands from a usage line "usage: NAME word|word ..." (ember-gen).
# Other words complete as file names (complete -o default).
set -euo pipefail
prog=${1:?usage: gen-completion.sh PROGRAM_PATH OUT}
out=${2:?usage: gen-completion.sh PROGRAM_PATH OUT}
name=$(basename "$prog")
help=$(LC_ALL=C ASAN_OPTIONS=detect_leaks=0 "$prog" --help)

flags=()
cases=""
subs=""
while IFS= read -r line; do
  if [[ $line =~ ^[Uu]sage:\ +[^\ ]+\ +([a-z][a-z0-9+-]*(\|[a-z][a-z0-9+-]*)+)(\ |$) ]]; then
    subs=${BASH_REMATCH[1]//|/ }
    continue
  fi
  [[ $line =~ ^[[:space:]]+-  ]] || continue
  col=$(sed -E 's/^[[:space:]]+//; s/[[:space:]]{2,}.*$//' <<<"$line")
  for f in $(grep -oE -- '--[a-z][a-z0-9-]*' <<<"$col"); do
    flags+=("$f")
  done
  # "--name a|b|c": lowercase alternatives are the flag's values
  if [[ $col =~ ^(--[a-z][a-z0-9-]*)[\ =]([a-z][a-z0-9+-]*(\|[a-z][a-z0-9+-]*)+)$ ]]; then
    cases+="    ${BASH_REMATCH[1]}) words=\"${BASH_REMATCH[2]//|/ }\" ;;"$'\n'
  fi
done <<<"$help"
[ "${#flags[@]}" -gt 0 ] || { echo "gen-completion: no flags in $name --help" >&2; exit 1; }
fn=_$(tr -c 'A-Za-z0-9_\n' '_' <<<"$name")
uniq_flags=$(printf '%s\n' "${flags[@]}" | awk '!seen[$0]++' | tr '\n' ' ')

tmp=$out.tmp
{
  echo "# bash completion for $name, generated from '$name --help' by"
  echo "# scripts/gen-completion.sh (ember). Do not edit."
  echo "$fn()"
  echo "{"
  echo "    local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]} words="
  echo "    COMPREPLY=()"
  echo "    case \$prev in"
  printf '%s' "$cases"
  echo "    esac"
  echo "    if [[ -z \$words && \$cur == -* ]]; then"
  echo "        words=\"${uniq_flags% }\""
  if [ -n "$subs" ]; then
    echo "    elif [[ -z \$words && \$COMP_CWORD -eq 1 ]]; then"
    echo "        words=\"$subs\""
  fi
  echo "    fi"
  echo "    [[ -n \$words ]] && COMPREPLY=(\$(compgen -W \"\$words\" -- \"\$cur\"))"
  echo "    return 0"
  echo "}"
  echo "complete -o default -F $fn $name"
} >"$tmp"
bash -n "$tmp"
mv "$tmp" "$out"
