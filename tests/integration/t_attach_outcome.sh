#!/usr/bin/env bash
# Issue 11: `penctl attach PATH` reports the outcome.  It waits for the
# pen's handshake and prints "attached SERIAL on PATH", or exits 6 with the
# reason the daemon gave the pen up (a pen that never answers used to be
# "attached", exit 0, and then vanished from `list`).  --no-wait keeps the
# fire-and-forget attach.
. "$(dirname "$0")/lib.sh"

# A short handshake timeout, so the silent pen is given up quickly; ten
# times longer under a memory checker.
ht=1500
[ ${#WRAP[@]} -gt 0 ] && ht=15000
cat >"$T/conf" <<CONF
[pens]
handshake_timeout_ms = $ht
CONF
start_daemon --config "$T/conf"

# A pen that never answers.
start_emu mute --serial PEN-AT-MUTE --sessions 0 --fault-mute
MUTE=$EMU_PORT
# penctl waits longer than the daemon's handshake timeout, so the answer is
# the daemon's verdict, not penctl giving up first.
expect 6 "${D[@]}" --timeout $((ht + 10000)) attach "$MUTE"
assert_contains "$ERR" "$MUTE" "the failure names the port"
assert_contains "$ERR" "handshake" "the failure says the handshake failed"
assert_contains "$ERR" "within $ht ms" "... and how long it waited"
assert_eq "$OUT" "" "nothing claims the pen was attached"
expect 0 "${D[@]}" --json list
assert_eq "$(jqo "[.pens[] | select(.port == \"$MUTE\")] | length")" "0" "the silent pen is not served"

# The same wait as above: with penctl's default 10 s, a memory checker's
# 15 s handshake timeout would leave the daemon still trying on this port
# when the test attaches it again below.
expect 6 "${D[@]}" --json --timeout $((ht + 10000)) attach "$MUTE"
assert_eq "$(jqo .error.exit_code)" "6" "--json: the error document"
assert_contains "$(jqo .error.message)" "handshake" "--json: the reason"
assert_contains "$(jqo .error.message)" "within $ht ms" "--json: the daemon's verdict, not penctl giving up"

# A pen that answers.
start_emu good --serial PEN-AT-1 --sessions 0
GOOD=$EMU_PORT
expect 0 "${D[@]}" attach "$GOOD"
assert_eq "$OUT" "attached PEN-AT-1 on $GOOD" "success names the pen and its port"
expect 0 "${D[@]}" --json list
assert_eq "$(jqo "[.pens[] | select(.port == \"$GOOD\") | .serial] | join(\",\")")" "PEN-AT-1" "the pen is served"
expect 7 "${D[@]}" attach "$GOOD"
assert_contains "$ERR" "already attached" "attaching it again is refused"
expect 0 "${D[@]}" detach "$GOOD"
expect 0 "${D[@]}" --json attach "$GOOD"
assert_eq "$(jqo .attached)" "$GOOD" "--json: the port"
assert_eq "$(jqo .serial)" "PEN-AT-1" "--json: the serial"

# penctl gives up before the daemon does: exit 6, saying the daemon is
# still trying (and the pen is listed as connecting meanwhile).
expect 6 "${D[@]}" --timeout 300 attach "$MUTE"
assert_contains "$ERR" "still waiting" "a penctl timeout says the daemon is still trying"
assert_contains "$ERR" "$MUTE" "... on which port"

# --no-wait: the old fire-and-forget attach, once the daemon has given up
# the silent pen (up to its handshake timeout from the attach above).
for i in $(seq $(((ht + 10000) / 100))); do
  run "${D[@]}" --json list
  [ "$(jq "[.pens[] | select(.port == \"$MUTE\")] | length" <<<"$OUT")" = 0 ] && break
  sleep 0.1
done
expect 0 "${D[@]}" attach --no-wait "$MUTE"
assert_eq "$OUT" "attached $MUTE" "--no-wait only asks"
done_testing
