#!/usr/bin/env bash
# Bad pens do not hurt good ones: a pen that never answers is given up on
# and detached with a logged reason; a pen on a noisy line (garbage,
# corrupt and dropped frames) still gets every session archived intact; a
# healthy pen beside them is archived as usual.
. "$(dirname "$0")/lib.sh"

start_emu good --serial PEN-F-GOOD --sessions 2 --session-bytes 300000 --seed 41
PG=$EMU_PORT
expect 0 --port "$PG" --json sessions list; echo "$OUT" >"$T/good.json"
start_emu noisy --serial PEN-F-NOISY --sessions 2 --session-bytes 300000 --seed 42 \
  --fault-garbage 30 --fault-corrupt 7 --fault-drop 13
PN=$EMU_PORT
expect 0 --port "$PN" --timeout 300 --json sessions list; echo "$OUT" >"$T/noisy.json"
start_emu mute --serial PEN-F-MUTE --sessions 1 --fault-mute
PM=$EMU_PORT

# Tight timeouts so the silent pen is dropped quickly; ten times longer
# under a memory checker, which slows every process down.
rt=300 ht=1500
[ ${#WRAP[@]} -gt 0 ] && rt=3000 ht=15000
cat >"$T/conf" <<CONF
[pens]
request_timeout_ms = $rt
handshake_timeout_ms = $ht
CONF
start_daemon --config "$T/conf" --port "$PM" --port "$PG" --port "$PN"

for i in $(seq 600); do
  run "${D[@]}" --json list
  idle=$(jq '[.pens[] | select(.state == "idle")] | length' <<<"$OUT")
  # The noisy pen may be done before the silent one's handshake gives up.
  mute=$(jq "[.pens[] | select(.port == \"$PM\")] | length" <<<"$OUT")
  [ "$idle" = 2 ] && [ "$mute" = 0 ] && break
  sleep 0.1
done
assert_eq "$(jqo '[.pens[] | select(.state == "idle") | .serial] | sort | join(",")')" \
  "PEN-F-GOOD,PEN-F-NOISY" "the healthy and the noisy pen are archived and idle"
assert_eq "$(jqo "[.pens[] | select(.port == \"$PM\")] | length")" "0" "the silent pen was detached"
grep -q "$PM" "$T/daemon.log" && grep -Eiq "$PM.*(handshake|answer|timeout)|(handshake|answer|timeout).*$PM" "$T/daemon.log" \
  && ok "the log says why the silent pen was dropped" || { cat "$T/daemon.log" >&2; fail "no reason logged"; }

expect 0 "${D[@]}" --json sessions list
assert_eq "$(jqo '.sessions | length')" "4" "four sessions archived"
for f in good noisy; do
  for uuid in $(jq -r '.sessions[].uuid' "$T/$f.json"); do
    want=$(jq -r ".sessions[] | select(.uuid == \"$uuid\") | .sha256" "$T/$f.json")
    assert_eq "$(jqo ".sessions[] | select(.uuid == \"$uuid\") | .sha256")" "$want" "$f: $uuid intact"
  done
done
kill -0 "$DAEMON_PID" && ok "penlinkd still running"
done_testing
