#!/usr/bin/env bash
# One daemon per database; unprivileged users are refused what their groups
# do not allow, and every refusal is in the audit trail; policy on presets.
. "$(dirname "$0")/lib.sh"

# nobody must be able to reach the socket for the daemon to refuse it itself.
chmod 0755 "$T"
start_emu a --serial PEN-AC-1 --sessions 1 --session-bytes 20000
cat >"$T/penlinkd.conf" <<CONF
[daemon]
socket_mode = 0666

[access]
logs_group = penlink-it-logs
presets_group = penlink-it-tech

[policy]
confirm_above_mm = 1.5
CONF
start_daemon --config "$T/penlinkd.conf" --port "$EMU_PORT"
wait_idle 1

# A second daemon on the same database refuses to start.
"$PENLINKD" --foreground --no-usb --socket "$T/other.sock" --db "$DB" >"$T/second.log" 2>&1
rc=$?
[ "$rc" -ne 0 ] && ok "second daemon on the same database exits $rc" || fail "second daemon started"
assert_contains "$(cat "$T/second.log")" "another penlinkd" "second daemon says why"

# The database and socket modes.
assert_eq "$(stat -c %a "$DB")" "600" "database created 0600"
assert_eq "$(stat -c %a "$SOCK")" "666" "socket mode from the config"

# An unprivileged user (nobody, in neither group).
# A copy nobody can reach whatever the permissions of the build tree
# (penctl links libpenlink statically).
cp "$PENCTL" "$T/penctl-copy" && chmod 0755 "$T/penctl-copy"
as_nobody() {
  OUT=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$T/penctl-copy" "$@" 2>"$T/stderr"); RC=$?
  ERR=$(cat "$T/stderr")
}
as_nobody "${D[@]}" --json list
assert_eq "$RC" "0" "anyone who can connect may list pens"
as_nobody "${D[@]}" sessions list
assert_eq "$RC" "5" "nobody may not read session logs (exit 5)"
assert_contains "$ERR" "permission denied" "refusal says permission denied"
assert_contains "$ERR" "penlink-it-logs" "refusal names the group needed"
as_nobody "${D[@]}" sessions export --format csv
assert_eq "$RC" "5" "nobody may not export"
as_nobody "${D[@]}" preset push --id 1 --name Fine --depth 0.5 --speed 2 --area forehead
assert_eq "$RC" "5" "nobody may not change presets"
assert_contains "$ERR" "penlink-it-tech" "preset refusal names the group needed"

expect 0 "${D[@]}" --json audit
assert_eq "$(jqo '[.entries[] | select(.action | startswith("denied:"))] | length >= 3')" "true" "refusals are audited"
assert_eq "$(jqo '[.entries[] | select(.action | startswith("denied:")) | .user] | unique | join(",")')" "nobody" "audit names the refused user"

# Root through the daemon: policy and validation still apply.
expect 4 "${D[@]}" preset push --id 5 --name Scar --depth 2.25 --speed 1 --area body-scar
assert_contains "$ERR" "--confirm" "deep preset needs --confirm through the daemon"
expect 0 "${D[@]}" --json preset push --id 5 --name Scar --depth 2.25 --speed 1 --area body-scar --confirm
assert_eq "$(jqo '.presets[] | select(.id == 5) | .depth_mm')" "2.25" "confirmed push applied and read back"
expect 4 "${D[@]}" preset push --id 3 --name Deep --depth 2.75 --speed 1 --confirm
assert_contains "$ERR" "2.75" "out-of-range depth refused through the daemon"
expect 0 "${D[@]}" --json audit
assert_eq "$(jqo '[.entries[] | select(.action == "presets.push" and .result == "ok")] | length')" "1" "the successful push is audited"
assert_contains "$(jqo '[.entries[] | select(.action == "presets.push" and .result == "ok")][0].new_value')" "Scar" "audit keeps the new set"
done_testing
