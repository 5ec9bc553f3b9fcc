# json_check.awk: exits non-zero unless every input line is one JSON value
# (a strict recursive-descent check of RFC 8259's grammar, so tests can
# check JSON Lines output without python or jq). Used by test_inspect_*.sh.
function err(m) {
  if (!bad) printf "json_check: line %d, column %d: %s\n", NR, pos, m > "/dev/stderr"
  bad = 1
  return 0
}
function ws() {
  while (pos <= len && index(" \t\r\n", substr(s, pos, 1))) pos++
}
function lit(w) {
  if (substr(s, pos, length(w)) != w) return err("expected " w)
  pos += length(w)
  return 1
}
function str(   c) {
  pos++
  while (pos <= len) {
    c = substr(s, pos, 1)
    if (c == "\"") { pos++; return 1 }
    if (c == "\\") {
      c = substr(s, pos + 1, 1)
      if (c == "u") {
        if (substr(s, pos + 2, 4) !~ /^[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]$/)
          return err("bad \\u escape")
        pos += 6
      } else if (index("\"\\/bfnrt", c) && c != "") {
        pos += 2
      } else {
        return err("bad escape")
      }
      continue
    }
    if (c < " ") return err("control character in a string")
    pos++
  }
  return err("unterminated string")
}
function num(   t) {
  t = substr(s, pos)
  if (!match(t, /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/)) return err("bad number")
  pos += RLENGTH
  return 1
}
function obj(   c) {
  pos++; ws()
  if (substr(s, pos, 1) == "}") { pos++; return 1 }
  for (;;) {
    ws()
    if (substr(s, pos, 1) != "\"") return err("expected a key")
    if (!str()) return 0
    ws()
    if (substr(s, pos, 1) != ":") return err("expected ':'")
    pos++
    if (!val()) return 0
    ws(); c = substr(s, pos, 1)
    if (c == ",") { pos++; continue }
    if (c == "}") { pos++; return 1 }
    return err("expected ',' or '}'")
  }
}
function arr(   c) {
  pos++; ws()
  if (substr(s, pos, 1) == "]") { pos++; return 1 }
  for (;;) {
    if (!val()) return 0
    ws(); c = substr(s, pos, 1)
    if (c == ",") { pos++; continue }
    if (c == "]") { pos++; return 1 }
    return err("expected ',' or ']'")
  }
}
function val(   c) {
  ws(); c = substr(s, pos, 1)
  if (c == "{") return obj()
  if (c == "[") return arr()
  if (c == "\"") return str()
  if (c == "t") return lit("true")
  if (c == "f") return lit("false")
  if (c == "n") return lit("null")
  if (c == "-" || (c >= "0" && c <= "9")) return num()
  return err("unexpected '" c "'")
}
{
  s = $0; len = length(s); pos = 1
  if (val()) { ws(); if (pos <= len) err("text after the value") }
  if (bad) exit 1
  lines++
}
END { if (!bad && !lines) { print "json_check: no input" > "/dev/stderr"; exit 1 } }
