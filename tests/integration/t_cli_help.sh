#!/usr/bin/env bash
# Help lives with the option tables: every command and subcommand answers
# --help with its own usage and options, and `penctl --help` lists the
# commands from the command table.
. "$(dirname "$0")/lib.sh"

expect 0 --help
assert_contains "$OUT" "usage: penctl" "global help: usage line"
for cmd in info "preset list" "preset push" "sessions list" "sessions pull" \
           "sessions show" "sessions export" "clock sync" trace ping list \
           monitor attach detach audit; do
  assert_contains "$OUT" "  $cmd" "global help lists '$cmd'"
done
assert_contains "$OUT" "--policy FILE" "global help: --policy"
assert_contains "$OUT" "Exit codes" "global help: exit codes"
case "$OUT" in *--no-host-check*) fail "--no-host-check is gone" ;; esac
ok "no --no-host-check"

# help_has CMD... -- NEEDLE...: `penctl CMD --help` exits 0, names the
# command and holds every needle.
help_has() {
  local cmd=() needle
  while [ "$1" != "--" ]; do cmd+=("$1"); shift; done; shift
  expect 0 "${cmd[@]}" --help
  assert_contains "$OUT" "usage: penctl ${cmd[*]}" "'${cmd[*]} --help' shows its usage"
  for needle in "$@"; do
    assert_contains "$OUT" "$needle" "'${cmd[*]} --help' has '$needle'"
  done
}
help_has sessions pull -- "--out DIR" "--since DATE" "--keep"
help_has sessions list -- "--since DATE"
help_has sessions show -- "--samples" "SERIAL/UUID"
help_has sessions export -- "--format" "--dir DIR" "--out FILE"
help_has preset push -- "--id N" "--name S" "--depth MM" "--speed L" "--area A" "--confirm"
help_has preset list --
help_has trace -- "--level N"
help_has ping -- "--count N"
help_has audit -- "--since DATE" "--limit N"
help_has info --
help_has clock sync --
help_has attach -- "PATH"
help_has list --
# -h too, and help for a command group lists its subcommands.
expect 0 preset push -h
assert_contains "$OUT" "usage: penctl preset push" "-h works like --help"
expect 0 sessions --help
assert_contains "$OUT" "pull" "'sessions --help' lists its subcommands"
assert_contains "$OUT" "export" "'sessions --help' lists export"
# Help needs neither a pen nor a daemon, and wins over missing arguments.
expect 0 --port /nonexistent sessions pull --help
ok "help does not open the port"
expect 0 --json preset push --help
assert_contains "$OUT" "usage: penctl preset push" "help is text even with --json"

done_testing
