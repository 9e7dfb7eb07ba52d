#!/usr/bin/env bash
# The clinic policy is decided once: through penlinkd by the daemon's own
# configuration (which may loosen the default as well as tighten it), with
# --port by the very same library check, on the default or `--policy FILE`.
# One refusal code for both: exit 4, --json "policy"; the daemon audits it.
. "$(dirname "$0")/lib.sh"

start_emu direct --serial PEN-POL-D --sessions 0
P=(--port "$EMU_PORT")

# Direct mode, default policy: above 1.50 mm needs --confirm.
expect 4 "${P[@]}" --json preset push --id 4 --name X --depth 1.75 --speed 1
assert_eq "$(jqo .error.code)" "policy" "direct: the default refuses 1.75 mm as policy"
assert_contains "$ERR" "--confirm" "direct: the refusal says how to confirm"

# Direct mode, --policy FILE with the daemon's [policy] syntax.
cat >"$T/policy.conf" <<'CONF'
# a copy of the clinic's penlinkd.conf
[daemon]
log_level = info

[policy]
confirm_above_mm = 2.0
CONF
expect 0 "${P[@]}" --json --policy "$T/policy.conf" preset push --id 4 --name X --depth 1.75 --speed 1
assert_eq "$(jqo '.presets[] | select(.id == 4) | .depth_mm')" "1.75" "direct: --policy FILE loosens the threshold"
expect 4 "${P[@]}" --json --policy "$T/policy.conf" preset push --id 4 --name X --depth 2.25 --speed 1
assert_eq "$(jqo .error.code)" "policy" "direct: --policy FILE still refuses above its threshold"
printf '[policy]\nconfirm_above_mm = deep\n' >"$T/bad.conf"
expect 4 "${P[@]}" --policy "$T/bad.conf" preset push --id 4 --name X --depth 0.5 --speed 1
assert_contains "$ERR" "confirm_above_mm" "a bad --policy FILE names the key"
expect 3 "${P[@]}" --policy "$T/missing.conf" preset push --id 4 --name X --depth 0.5 --speed 1
ok "a missing --policy FILE is not found"
stop_emu "$EMU_PID"

# Through penlinkd: its configuration decides, penctl only passes --confirm.
start_emu pen --serial PEN-POL-1 --sessions 0
cat >"$T/penlinkd.conf" <<'CONF'
[policy]
confirm_above_mm = 2.0
CONF
start_daemon --config "$T/penlinkd.conf" --port "$EMU_PORT"
wait_idle 1

expect 0 "${D[@]}" --json preset push --id 4 --name X --depth 1.75 --speed 1
assert_eq "$(jqo '.presets[] | select(.id == 4) | .depth_mm')" "1.75" "daemon: a looser threshold from its config applies"
expect 4 "${D[@]}" --json preset push --id 4 --name X --depth 2.25 --speed 1
assert_eq "$(jqo .error.code)" "policy" "daemon: above its threshold is a policy refusal"
assert_eq "$(jqo .error.exit_code)" "4" "daemon: policy refusal exits 4"
expect 4 "${D[@]}" preset push --id 4 --name X --depth 2.25 --speed 1
assert_contains "$ERR" "2.00" "daemon: the message names the daemon's threshold"
expect 0 "${D[@]}" --json preset push --id 4 --name X --depth 2.25 --speed 1 --confirm
assert_eq "$(jqo '.presets[] | select(.id == 4) | .depth_mm')" "2.25" "daemon: --confirm is passed on"

expect 0 "${D[@]}" --json audit
refused=$(jqo '[.entries[] | select((.action | contains("presets.push")) and .result != "ok" and (.result | contains("2.25")))] | length')
[ "$refused" -ge 1 ] || fail "the policy refusal is not in the audit trail: $OUT"
ok "daemon: the refusal is in the audit trail"

# The daemon's policy is the daemon's: penctl refuses to bring its own.
expect 2 "${D[@]}" --policy "$T/policy.conf" preset push --id 4 --name X --depth 0.5 --speed 1
assert_contains "$ERR" "daemon's own policy" "--policy with the daemon is a usage error"

done_testing
