#!/usr/bin/env bash
# --json streams (trace, monitor) stay one object per line, their closing
# error too: penlinkd dies under them, every stdout line parses alone, the
# last is the error, and the exit code is 9 as the README says.
. "$(dirname "$0")/lib.sh"

start_daemon
start_emu pen --serial PEN-IT-JS --sessions 1 --session-bytes 20000
expect 0 "${D[@]}" attach "$EMU_PORT"
wait_idle 1

"${WRAP[@]}" "$PENCTL" "${D[@]}" --json monitor >"$T/mon.out" 2>"$T/mon.err" &
MON=$!
"${WRAP[@]}" "$PENCTL" "${D[@]}" --json trace --level 3 >"$T/tr.out" 2>"$T/tr.err" &
TR=$!
EMU_PIDS+=("$MON" "$TR")
sleep 1
# Something for both streams to carry: a request the pen traces, and a
# second pen attaching.
expect 0 "${D[@]}" -s PEN-IT-JS clock sync
start_emu pen2 --serial PEN-IT-JS2 --sessions 0
expect 0 "${D[@]}" attach "$EMU_PORT"
sleep 1
sleep 0.5
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
wait "$MON"; mon_rc=$?
wait "$TR"; tr_rc=$?

check_stream() {
  local name=$1 file=$2 rc=$3 n
  assert_eq "$rc" "9" "$name: exit 9 when penlinkd goes away"
  n=$(wc -l <"$file")
  [ "$n" -ge 1 ] || fail "$name printed nothing"
  python3 -c '
import json, sys
for i, line in enumerate(open(sys.argv[1]), 1):
    o = json.loads(line)
    assert isinstance(o, dict), "line %d is not an object" % i
' "$file" && ok "$name: each of its $n stdout lines is one JSON object" \
    || fail "$name: a line is not JSON on its own: $(cat "$file")"
  local last
  last=$(tail -n1 "$file")
  assert_eq "$(jq -r .error.code <<<"$last")" "daemon_not_running" "$name: the last line is the error"
  assert_eq "$(jq -r .error.exit_code <<<"$last")" "9" "$name: the error line says exit 9"
  assert_contains "$(jq -r .error.message <<<"$last")" "went away" "$name: and why"
}
check_stream monitor "$T/mon.out" "$mon_rc"
check_stream trace "$T/tr.out" "$tr_rc"
[ "$(wc -l <"$T/mon.out")" -ge 2 ] && ok "monitor streamed events before the error" \
  || fail "monitor: $(cat "$T/mon.out")"
done_testing
