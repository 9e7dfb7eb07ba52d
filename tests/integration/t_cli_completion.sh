#!/usr/bin/env bash
# bash completion for penctl: the installed script (cli/penctl.bash-completion)
# run in a real bash, completing commands, subcommands and options from
# penctl's own tables, and the attached pens' serials and archived sessions
# from penlinkd; with no daemon it stays quiet and quick.
. "$(dirname "$0")/lib.sh"
src=$(cd "$(dirname "$0")/../.." && pwd)

# complete WORDS...: what bash's completion offers for the last word.
complete_line() {
  PENCTL_BIN="$PENCTL" bash --norc --noprofile -c '
    penctl() { "$PENCTL_BIN" "$@"; }
    source "$1"; shift
    COMP_WORDS=("$PENCTL_BIN" "$@"); COMP_CWORD=$#
    COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}
    _penctl
    printf "%s\n" "${COMPREPLY[@]}" | sort' _ "$src/cli/penctl.bash-completion" "$@"
}

out=$(complete_line "")
for w in info preset sessions list monitor attach audit scan; do
  assert_contains "$out" "$w" "a first word completes to $w"
done
assert_eq "$(complete_line se | tr '\n' ' ')" "sessions " "'se' completes to sessions"
assert_eq "$(complete_line sessions p | tr '\n' ' ')" "pull " "'sessions p' completes to pull"
out=$(complete_line sessions pull --)
assert_contains "$out" "--out" "sessions pull's own options are offered"
assert_contains "$out" "--json" "and the global ones"
mkdir -p "$T/dl/records"
out=$(cd "$T/dl" && complete_line sessions pull --out rec)
assert_eq "$out" "records" "--out DIR completes a path"

# With no daemon: nothing offered for -s, and no hang.
start=$(date +%s%N)
out=$(PENLINK_SOCKET="$T/none.sock" complete_line -s "")
ms=$(( ($(date +%s%N) - start) / 1000000 ))
assert_eq "$out" "" "no daemon: no serials, no noise"
[ "$ms" -lt 3000 ] || fail "completion took ${ms} ms without a daemon"
ok "no daemon: completion returns in ${ms} ms"

# Serials and sessions from penlinkd.
start_emu pen --serial PEN-CMP-1 --sessions 2
start_daemon --port "$EMU_PORT"
wait_idle 1
out=$(complete_line --socket "$SOCK" -s "")
assert_eq "$out" "PEN-CMP-1" "-s completes the attached pen's serial"
out=$(complete_line --socket "$SOCK" sessions show PEN)
[ "$(grep -c '^PEN-CMP-1/[0-9a-f-]\{36\}$' <<<"$out")" -eq 2 ] ||
  fail "sessions show did not offer the 2 archived sessions as SERIAL/UUID: $out"
ok "sessions show completes the archive's SERIAL/UUID"
done_testing
