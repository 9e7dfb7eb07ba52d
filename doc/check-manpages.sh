#!/usr/bin/env bash
# doc.manpages (ctest, label unit): the generated man pages render without
# a single groff warning, and they cover what the programs say they have:
#
#   penctl.1         every command in "penctl --help" as an entry under
#                    COMMANDS, every option of "penctl COMMAND --help" under
#                    that command's entry, every global option under GLOBAL
#                    OPTIONS;
#   penlinkd.8       every option in "penlinkd --help" under OPTIONS;
#   penlinkd.conf.5  every [section] of penlinkd.conf.example as a section
#                    and every key of it as an entry in that section;
#   penemu.1         every option and hostile mode in "penemu --help".
#
# So a command, option or key added to the code without its man page fails
# the unit tier.  Pages are rendered once at an unlimited line length (no
# wrapping, no hyphenation), and entries are found by their indentation:
# 7 spaces for an entry of a section, 11 for one nested in it.
#
# usage: check-manpages.sh --pages DIR --penctl BIN --penlinkd BIN
#                          --conf penlinkd.conf.example [--penemu BIN]
set -uo pipefail

pages= penctl= penlinkd= conf= penemu=
while [ $# -gt 0 ]; do
  case $1 in
    --pages) pages=$2 ;;
    --penctl) penctl=$2 ;;
    --penlinkd) penlinkd=$2 ;;
    --conf) conf=$2 ;;
    --penemu) penemu=$2 ;;
    *) echo "check-manpages.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift 2
done
for v in pages penctl penlinkd conf; do
  [ -n "${!v}" ] || { echo "check-manpages.sh: --$v is required" >&2; exit 2; }
done

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

list=(penctl.1 penlinkd.8 penlinkd.conf.5)
[ -n "$penemu" ] && list+=(penemu.1)

# ------------------------------------------------------------ rendering
for page in "${list[@]}"; do
  f=$pages/$page
  if [ ! -s "$f" ]; then
    fail "$f is missing or empty (is scdoc installed? run the build first)"
    continue
  fi
  # groff itself, every warning category on, tbl and preconv as man runs
  # them.
  if ! groff -t -k -man -Tutf8 -ww -z "$f" >"$tmp/groff.err" 2>&1 ||
     [ -s "$tmp/groff.err" ]; then
    fail "$page: groff -ww reports:"; sed 's/^/    /' "$tmp/groff.err" >&2
  fi
  # man-db, as a reader gets it, at 80 columns.
  if ! MANWIDTH=80 MAN_DISABLE_SECCOMP=1 man --warnings -E UTF-8 -l "$f" \
         >"$tmp/man.out" 2>"$tmp/man.err" || [ -s "$tmp/man.err" ]; then
    fail "$page: man -l reports:"; sed 's/^/    /' "$tmp/man.err" >&2
  fi
  grep -q '^NAME' "$tmp/man.out" && grep -q '^SYNOPSIS' "$tmp/man.out" ||
    fail "$page: no NAME or SYNOPSIS section in what man -l renders"
  # Plain text, one line per paragraph, for the coverage checks below.
  groff -t -k -man -Tascii -rLL=4000n -rHY=0 -P-cbou "$f" \
    2>/dev/null >"$tmp/$page.txt"
done

# Lines of section SECTION of a rendered page (headings are in column 0).
section() {
  awk -v s="$2" '/^[^ ]/ { on = ($0 == s); next } on' "$tmp/$1.txt"
}
# Is there an entry (a tag line) at indentation N starting with TEXT,
# followed by a space or the end of the line, on stdin?
has_tag() {
  local n=$1 text=$2
  awk -v n="$n" -v t="$text" '
    { ind = match($0, /[^ ]/) - 1
      rest = substr($0, ind + 1)
      if (ind == n && (rest == t || index(rest, t " ") == 1)) found = 1 }
    END { exit !found }'
}
# Options in --help text: "  -c, --count N   ..." gives "-c, --count".
help_opts() {
  sed -nE 's/^ {2,}((-[A-Za-z], )?--[a-z][a-z0-9-]*).*/\1/p'
}

# ------------------------------------------------------------ penctl.1
if [ -s "$tmp/penctl.1.txt" ]; then
  "$penctl" --help >"$tmp/penctl.help" 2>&1 ||
    fail "penctl --help failed"
  # Global options: the lines between "Global options" and the first
  # blank line.
  awk '/^Global options/ { on = 1; next } on && /^$/ { exit } on' \
    "$tmp/penctl.help" | help_opts >"$tmp/global"
  [ -s "$tmp/global" ] || fail "no global options found in penctl --help"
  while read -r opt; do
    section penctl.1 "GLOBAL OPTIONS" | has_tag 7 "$opt" ||
      fail "penctl.1: global option '$opt' has no entry under GLOBAL OPTIONS"
  done <"$tmp/global"

  # Commands: the entries of the lists under headings such as "Commands
  # (both ways):" or "Only with --port:" (every "Heading:" but the global
  # options and the exit codes), whose name is the lowercase words before
  # the arguments.
  awk '/^[A-Z].*:$/ { on = ($0 !~ /^(Global options|Exit codes|Also with --central)/); next }
       /^[^ ]/ { on = 0 }
       on && /^  [a-z]/' "$tmp/penctl.help" |
    sed -E 's/^  //; s/ {2,}.*//' |
    awk '{ n = ""; for (i = 1; i <= NF && $i ~ /^[a-z][a-z-]*$/; i++)
             n = n (n == "" ? "" : " ") $i; print n }' >"$tmp/commands"
  [ -s "$tmp/commands" ] || fail "no commands found in penctl --help"
  section penctl.1 COMMANDS >"$tmp/commands.txt"
  while read -r cmd; do
    if ! has_tag 7 "$cmd" <"$tmp/commands.txt"; then
      fail "penctl.1: command '$cmd' has no entry under COMMANDS"
      continue
    fi
    # The command's entry: its tag lines and everything indented below
    # them, up to the next entry of another command.
    awk -v c="$cmd" '
      { ind = match($0, /[^ ]/) - 1; rest = substr($0, ind + 1) }
      ind == 7 { on = (rest == c || index(rest, c " ") == 1) }
      ind >= 0 && ind < 7 { on = 0 }
      on' "$tmp/commands.txt" >"$tmp/entry"
    # shellcheck disable=SC2086 # the command's words are its arguments
    "$penctl" $cmd --help >"$tmp/cmd.help" 2>&1 ||
      fail "penctl $cmd --help failed"
    awk '/^Options:/ { on = 1; next } on && /^$/ { exit } on' \
      "$tmp/cmd.help" | help_opts >"$tmp/cmd.opts"
    while read -r opt; do
      has_tag 11 "$opt" <"$tmp/entry" ||
        fail "penctl.1: option '$opt' of '$cmd' has no entry under it"
    done <"$tmp/cmd.opts"
  done <"$tmp/commands"
  echo "penctl.1: $(wc -l <"$tmp/commands") commands, $(wc -l <"$tmp/global") global options checked"
fi

# ------------------------------------------------------------ penlinkd.8
if [ -s "$tmp/penlinkd.8.txt" ]; then
  "$penlinkd" --help >"$tmp/penlinkd.help" 2>&1 ||
    fail "penlinkd --help failed"
  grep -E '^ {2}--' "$tmp/penlinkd.help" | grep -oE -- '--[a-z][a-z0-9-]*' |
    sort -u >"$tmp/d.opts"
  [ -s "$tmp/d.opts" ] || fail "no options found in penlinkd --help"
  while read -r opt; do
    section penlinkd.8 OPTIONS | has_tag 7 "$opt" ||
      fail "penlinkd.8: option '$opt' has no entry under OPTIONS"
  done <"$tmp/d.opts"
  echo "penlinkd.8: $(wc -l <"$tmp/d.opts") options checked"
fi

# ------------------------------------------------------------ penlinkd.conf.5
if [ -s "$tmp/penlinkd.conf.5.txt" ]; then
  # "[section]" and "#key = value" (commented-out defaults) or "key = value";
  # "#   depth_cap.NAME = 1.0" (indented) is an example, not a key.
  awk '/^\[[a-z]+\]/ { s = $0; sub(/\].*/, "]", s); print s; next }
       /^[#;]?[a-z][a-z0-9_]* *=/ { k = $0; sub(/^[#;]/, "", k);
                                     sub(/ *=.*/, "", k); print s " " k }' \
    "$conf" >"$tmp/keys"
  grep -q ' ' "$tmp/keys" || fail "no keys found in $conf"
  nkeys=0
  while read -r sec key; do
    if [ -z "$key" ]; then
      grep -qxF -- "$sec" "$tmp/penlinkd.conf.5.txt" ||
        fail "penlinkd.conf.5: section $sec of $(basename "$conf") has no section"
      continue
    fi
    nkeys=$((nkeys + 1))
    section penlinkd.conf.5 "$sec" | has_tag 7 "$key" ||
      fail "penlinkd.conf.5: key '$key' of $(basename "$conf") has no entry under $sec"
  done <"$tmp/keys"
  echo "penlinkd.conf.5: $nkeys keys of $(basename "$conf") checked"
fi

# ------------------------------------------------------------ penemu.1
if [ -n "$penemu" ] && [ -s "$tmp/penemu.1.txt" ]; then
  "$penemu" --help >"$tmp/penemu.help" 2>&1 || fail "penemu --help failed"
  help_opts <"$tmp/penemu.help" | sort -u >"$tmp/e.opts"
  [ -s "$tmp/e.opts" ] || fail "no options found in penemu --help"
  while read -r opt; do
    has_tag 7 "$opt" <"$tmp/penemu.1.txt" ||
      fail "penemu.1: option '$opt' has no entry"
  done <"$tmp/e.opts"
  # Hostile modes: "     NAME   what it does" below "Hostile pen".
  awk '/^Hostile/ { on = 1; next } on && /^[^ ]/ { on = 0 } on' \
    "$tmp/penemu.help" | sed -nE 's/^ {5}([a-z]+) {2,}.*/\1/p' >"$tmp/modes"
  [ -s "$tmp/modes" ] || fail "no hostile modes found in penemu --help"
  while read -r mode; do
    section penemu.1 "HOSTILE MODES" | has_tag 11 "$mode" ||
      fail "penemu.1: hostile mode '$mode' has no entry under HOSTILE MODES"
  done <"$tmp/modes"
  echo "penemu.1: $(wc -l <"$tmp/e.opts") options, $(wc -l <"$tmp/modes") hostile modes checked"
fi

if [ "$failures" -ne 0 ]; then
  echo "check-manpages.sh: $failures failure(s)" >&2
  exit 1
fi
echo "check-manpages.sh: ${#list[@]} pages render cleanly and cover their programs"
