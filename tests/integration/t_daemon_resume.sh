#!/usr/bin/env bash
# Downloads survive an unplug and the daemon's death: they resume from the
# stored offset, nothing is lost or duplicated, every digest matches, and a
# pen is never told to reclaim what was not committed.
. "$(dirname "$0")/lib.sh"

# 1. Unplug mid-download (penemu exits after 1.5 MB), then re-plug.
start_emu a --serial PEN-DR-1 --flash "$T/a.flash" --sessions 2 --session-bytes 2000000 --seed 31 \
  --fault-disconnect-after 1500000
expect 0 --port "$EMU_PORT" --json sessions list; echo "$OUT" >"$T/a.json"
# Generous timeouts: under valgrind (PL_TEST_WRAPPER) everything is 20-50x
# slower, and a pen the daemon gives up on before the fault fires would
# never simulate its unplug.
cat >"$T/conf" <<CONF
[pens]
request_timeout_ms = 8000
handshake_timeout_ms = 30000
CONF
start_daemon --config "$T/conf" --port "$EMU_PORT"
for i in $(seq 1200); do kill -0 "$EMU_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$EMU_PID" 2>/dev/null && { cat "$T/daemon.log" >&2; fail "penemu never reached its unplug point"; }
wait "$EMU_PID"
for i in $(seq 100); do
  run "${D[@]}" --json list
  [ "$(jq '.pens | length' <<<"$OUT")" = 0 ] && break
  sleep 0.1
done
assert_eq "$(jqo '.pens | length')" "0" "the unplugged pen was detached"
kill -0 "$DAEMON_PID" && ok "penlinkd keeps running after the unplug"
expect 0 "${D[@]}" --json sessions list
archived_before=$(jqo '.sessions | length')

start_emu a2 --flash "$T/a.flash"
PA2=$EMU_PORT
expect 0 "${D[@]}" attach "$PA2"
wait_idle 1
expect 0 "${D[@]}" --json sessions list
assert_eq "$(jqo '.sessions | length')" "2" "both sessions archived after re-plug"
for uuid in $(jq -r '.sessions[].uuid' "$T/a.json"); do
  want=$(jq -r ".sessions[] | select(.uuid == \"$uuid\") | .sha256" "$T/a.json")
  assert_eq "$(jqo ".sessions[] | select(.uuid == \"$uuid\") | .sha256")" "$want" "digest of $uuid after the unplug"
done
grep -Eq 'offset [1-9][0-9]*' "$T/daemon.log" && ok "the download resumed from a stored offset, not 0" \
  || { cat "$T/daemon.log" >&2; fail "no resume offset in the log"; }
echo "archived before the replug: $archived_before"

# 2. kill -9 of the daemon mid-download, restart on the same database.
start_emu b --serial PEN-DR-2 --flash "$T/b.flash" --sessions 3 --session-bytes 4000000 --seed 32 --fault-delay 2
PB=$EMU_PORT
expect 0 --port "$PB" --json sessions list; echo "$OUT" >"$T/b.json"
expect 0 "${D[@]}" attach "$PB"
for i in $(seq 200); do
  run "${D[@]}" --json list
  done_b=$(jq '[.pens[] | select(.serial == "PEN-DR-2") | .download_done] | add // 0' <<<"$OUT")
  [ "$done_b" -gt 500000 ] && break
  sleep 0.05
done
kill -9 "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null
ok "penlinkd killed with SIGKILL mid-download ($done_b bytes into a session)"
# The pen must not have been told to reclaim anything not committed: every
# session it lists as archived must be in the archive after the restart.
expect 0 --port "$PB" --json sessions list; echo "$OUT" >"$T/b-after-kill.json"
rm -f "$SOCK"
start_daemon --config "$T/conf" --port "$PB" --port "$PA2"
wait_idle 2 120
expect 0 "${D[@]}" --json sessions list
assert_eq "$(jqo '[.sessions[] | select(.serial == "PEN-DR-2")] | length')" "3" "all three sessions of the killed download archived once"
assert_eq "$(jqo '.sessions | length')" "5" "no duplicates across the restart"
for uuid in $(jq -r '.sessions[].uuid' "$T/b.json"); do
  want=$(jq -r ".sessions[] | select(.uuid == \"$uuid\") | .sha256" "$T/b.json")
  assert_eq "$(jqo ".sessions[] | select(.uuid == \"$uuid\") | .sha256")" "$want" "digest of $uuid after kill -9"
done
for uuid in $(jq -r '.sessions[] | select(.archived) | .uuid' "$T/b-after-kill.json"); do
  jq -e ".sessions[] | select(.uuid == \"$uuid\")" <<<"$OUT" >/dev/null || fail "pen reclaimable $uuid missing"
done
ok "nothing the pen was told to reclaim is missing from the archive"
done_testing
