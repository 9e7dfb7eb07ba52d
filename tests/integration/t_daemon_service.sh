#!/usr/bin/env bash
# penlinkd under a service manager: READY=1 once the socket and archive are
# open, STATUS with the number of pens attached, RELOADING/READY around a
# SIGHUP that re-reads [policy] (a looser threshold applies without a
# restart), WATCHDOG=1 pings at half of WatchdogSec=, STOPPING=1 on SIGTERM.
# The manager is a datagram socket of the test's own ($NOTIFY_SOCKET), so
# the messages are read exactly as systemd would get them.
. "$(dirname "$0")/lib.sh"

NOTIFY="$T/notify.sock"
MSGS="$T/notify.log"
python3 - "$NOTIFY" "$MSGS" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        data = s.recv(4096).decode("utf-8", "replace")
        out.write(data.replace("\n", "|") + "\n")
PY
LISTENER=$!
EMU_PIDS+=("$LISTENER")
for i in $(seq 100); do [ -S "$NOTIFY" ] && break; sleep 0.05; done
[ -S "$NOTIFY" ] || fail "the notify listener did not start"

# wait_msg PATTERN: until a notification line matches (extended regex).
wait_msg() {
  local i
  for i in $(seq 200); do
    grep -Eq "$1" "$MSGS" 2>/dev/null && return 0
    sleep 0.05
  done
  printf 'notifications:\n%s\n' "$(cat "$MSGS" 2>/dev/null)" >&2
  cat "$T/daemon.log" >&2
  fail "no notification matching '$1'"
}

cat >"$T/penlinkd.conf" <<'CONF'
[policy]
confirm_above_mm = 1.5
CONF
start_emu pen --serial PEN-SVC-1 --sessions 0
# WATCHDOG_PID must be penlinkd's own pid: exec keeps the shell's.
NOTIFY_SOCKET="$NOTIFY" WATCHDOG_USEC=400000 \
  bash -c 'WATCHDOG_PID=$$ exec "$@"' penlinkd "${WRAP[@]}" "$PENLINKD" \
  --foreground --no-usb --socket "$SOCK" --db "$DB" --config "$T/penlinkd.conf" \
  >>"$T/daemon.log" 2>&1 &
DAEMON_PID=$!
EMU_PIDS+=("$DAEMON_PID")

wait_msg '^READY=1\|STATUS=0 pens attached$'
[ -S "$SOCK" ] || fail "READY=1 came before the control socket existed"
ok "READY=1 once the socket is open, with a STATUS line"

expect 0 "${D[@]}" attach "$EMU_PORT"
wait_msg '^STATUS=1 pen attached$'
ok "STATUS follows the pens attached"
wait_idle 1

n1=$(grep -c '^WATCHDOG=1$' "$MSGS")
sleep 1
n2=$(grep -c '^WATCHDOG=1$' "$MSGS")
# 400 ms interval, pinged every 200 ms: about 5 in a second.
[ $((n2 - n1)) -ge 3 ] && [ $((n2 - n1)) -le 8 ] ||
  fail "expected about 5 watchdog pings in 1 s, got $((n2 - n1))"
ok "WATCHDOG=1 at half the interval ($((n2 - n1)) in 1 s)"

expect 4 "${D[@]}" --json preset push --id 4 --name X --depth 1.75 --speed 1
assert_eq "$(jqo .error.code)" "policy" "before the reload, 1.75 mm needs --confirm"
printf '[policy]\nconfirm_above_mm = 2.0\n' >"$T/penlinkd.conf"
kill -HUP "$DAEMON_PID"
wait_msg '^RELOADING=1$'
wait_msg 'READY=1\|STATUS=1 pen attached$'
expect 0 "${D[@]}" --json preset push --id 4 --name X --depth 1.75 --speed 1
assert_eq "$(jqo '.presets[] | select(.id == 4) | .depth_mm')" "1.75" "after SIGHUP the looser threshold applies"
grep -q "reloaded $T/penlinkd.conf" "$T/daemon.log" || fail "the reload is not logged"
ok "the reload is logged"
# --socket and --db keep overriding the file: not a change to warn about.
grep -q "next restart" "$T/daemon.log" && fail "a reload that changed only [policy] warns about a restart"
ok "a [policy]-only reload does not ask for a restart"

# A file that no longer parses changes nothing and says why.
printf '[policy]\nconfirm_above_mm = deep\n' >"$T/penlinkd.conf"
kill -HUP "$DAEMON_PID"
for i in $(seq 100); do grep -q "keeping the running configuration" "$T/daemon.log" && break; sleep 0.05; done
assert_contains "$(cat "$T/daemon.log")" "confirm_above_mm" "a bad file on reload is named and ignored"
expect 0 "${D[@]}" --json preset push --id 4 --name X --depth 2.00 --speed 1
ok "the running policy stays after a failed reload"
kill -0 "$DAEMON_PID" || fail "penlinkd died on a bad reload"

# Keys that hold resources need a restart, and the log says so.
printf '[pens]\nrequest_timeout_ms = 2500\n[policy]\nconfirm_above_mm = 2.0\n' >"$T/penlinkd.conf"
kill -HUP "$DAEMON_PID"
for i in $(seq 100); do grep -q "next restart" "$T/daemon.log" && break; sleep 0.05; done
assert_contains "$(cat "$T/daemon.log")" "take effect at the next restart" "a [pens] change on reload waits for a restart"
kill -0 "$DAEMON_PID" || fail "penlinkd died on a reload that needs a restart"

kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" || fail "penlinkd did not exit 0 on SIGTERM"
wait_msg '^STOPPING=1$'
ok "STOPPING=1 on SIGTERM, exit 0"
done_testing
