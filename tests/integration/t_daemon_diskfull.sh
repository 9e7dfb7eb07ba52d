#!/usr/bin/env bash
# The archive cannot grow (a file-size limit, as a full disk): the daemon
# reports the error, keeps running, and does NOT tell the pen to reclaim
# anything; once the archive can grow again, every session is archived
# intact.
. "$(dirname "$0")/lib.sh"

start_emu pen --serial PEN-FULL --flash "$T/pen.flash" --sessions 3 --session-bytes 1500000 --seed 51
P=$EMU_PORT
expect 0 --port "$P" --json sessions list; echo "$OUT" >"$T/pen.json"

# 1200 KiB: room for the schema and some chunks, not for one whole session.
bash -c 'ulimit -f 1200; exec "$@"' _ "$PENLINKD" --foreground --no-usb --socket "$SOCK" \
  --db "$DB" --port "$P" >>"$T/daemon.log" 2>&1 &
DAEMON_PID=$!; EMU_PIDS+=("$DAEMON_PID")
for i in $(seq 200); do [ -S "$SOCK" ] && break; sleep 0.05; done

for i in $(seq 300); do
  grep -Eqi "full|too large|EFBIG|cannot (archive|store)" "$T/daemon.log" && break
  sleep 0.1
done
grep -Eqi "full|too large|EFBIG|cannot (archive|store)" "$T/daemon.log" \
  && ok "the daemon logs that the archive cannot grow" || { cat "$T/daemon.log" >&2; fail "no error logged"; }
kill -0 "$DAEMON_PID" && ok "penlinkd survives the full archive" || fail "penlinkd died"
expect 0 "${D[@]}" --json sessions list
assert_eq "$(jqo '.sessions | length')" "0" "nothing half-archived"

kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null
expect 0 --port "$P" --json sessions list
assert_eq "$(jqo '[.sessions[].archived] | any')" "false" "the pen was told to reclaim nothing"

# Room again: everything arrives, intact.
rm -f "$SOCK"
start_daemon --port "$P"
wait_idle 1 120
expect 0 "${D[@]}" --json sessions list
assert_eq "$(jqo '.sessions | length')" "3" "all sessions archived once the archive can grow"
for uuid in $(jq -r '.sessions[].uuid' "$T/pen.json"); do
  want=$(jq -r ".sessions[] | select(.uuid == \"$uuid\") | .sha256" "$T/pen.json")
  assert_eq "$(jqo ".sessions[] | select(.uuid == \"$uuid\") | .sha256")" "$want" "$uuid intact"
done
done_testing
