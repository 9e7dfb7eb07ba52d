#!/usr/bin/env bash
# penctl without --port, where no penlinkd answers: "daemon not running"
# (exit 9) with a message that says what to do, permission denied (exit 5),
# a silent or vanishing daemon (exit 6 / 9), and the command-line checks of
# the daemon commands (exit 2), all before or without any daemon.
. "$(dirname "$0")/lib.sh"

NOSOCK="$T/none.sock"

# ---- nothing at the socket path
expect 9 --socket "$NOSOCK" info
assert_contains "$ERR" "penlinkd is not running (no socket at $NOSOCK)" "no socket: exit 9, names the path"
assert_contains "$ERR" "use --port PATH" "no socket: says how to reach a pen without the daemon"
expect 9 --socket "$NOSOCK" --json list
assert_eq "$(jqo .error.code)" "daemon_not_running" "JSON error code"
assert_eq "$(jqo .error.exit_code)" "9" "JSON exit code"
PENLINK_SOCKET="$T/from-env.sock" expect 9 list
assert_contains "$ERR" "$T/from-env.sock" "\$PENLINK_SOCKET is used without --socket"
PENLINK_SOCKET="$T/from-env.sock" expect 9 --socket "$NOSOCK" list
assert_contains "$ERR" "$NOSOCK" "--socket wins over \$PENLINK_SOCKET"
expect 9 --socket "$T/nodir/s.sock" audit
ok "missing directory: exit 9"

# A plain file where the socket should be: nothing listens.
: >"$T/plain"
expect 9 --socket "$T/plain" list
assert_contains "$ERR" "not running" "plain file at the socket path: not running"

# ---- command-line checks come first (exit 2, naming the bad value)
export PENLINK_SOCKET="$NOSOCK"
for bad in 2024-13-01 2024-02-30 2023-02-29 2024-5-1 yesterday 2024-05-01T25:00 \
           2024-05-01T10:00Zjunk 2024-05-01T10 1969-12-31 ""; do
  expect 2 sessions list --since "$bad"
  assert_contains "$ERR" "'$bad'" "--since '$bad' refused, value named"
done
expect 2 --json sessions export --since 2024/05/01
assert_eq "$(jqo .error.code)" "usage" "bad --since: JSON usage error"
expect 2 audit --since 31.12.2024
expect 2 sessions pull --since never --out "$T/pull"
[ -e "$T/pull" ] && fail "a refused pull created its directory"
ok "bad --since on audit and pull refused before doing anything"
# Good dates get past the parser and on to the (missing) daemon.
for good in 2024-05-01 2024-02-29 2024-05-01T10:00 2024-05-01T10:00:30 \
            2024-05-01T10:00:30Z 2024-05-01T10:00+02:00 2024-05-01T10:00-0530; do
  expect 9 sessions list --since "$good"
done
ok "valid DATE forms accepted"

expect 2 ping
assert_contains "$ERR" "ping needs --port" "ping without --port: exit 2"
expect 2 --port "$T/none" list
assert_contains "$ERR" "penlinkd" "list with --port: exit 2, says it needs the daemon"
for cmd in monitor audit "attach /dev/null" "detach /dev/null" "sessions export"; do
  # shellcheck disable=SC2086
  expect 2 --port "$T/none" $cmd
done
ok "daemon-only commands refuse --port"
expect 2 --port "$T/none" --socket "$NOSOCK" info
assert_contains "$ERR" "exclude each other" "--port with --socket refused"
expect 2 attach
expect 2 detach
assert_contains "$ERR" "-s SERIAL" "detach without a pen says how to name one"
expect 2 sessions export --format xml
assert_contains "$ERR" "xml" "unknown export format named"
expect 2 audit --limit 0
expect 2 --socket "$T/$(printf 'x%.0s' $(seq 120))" list
assert_contains "$ERR" "at most" "over-long socket path refused"

# ---- sessions show: a file is read without the daemon, a UUID needs it
printf 'not a record' >"$T/junk.plrec"
expect 8 sessions show "$T/junk.plrec"
ok "show FILE decodes the file, no daemon needed (exit 8 for junk, not 9)"
expect 9 sessions show 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0
ok "show UUID goes to the archive (exit 9 here)"
expect 3 sessions show "$T/neither"
ok "show of something neither a file nor a UUID: not found"

# ---- a socket penctl may not connect to: permission denied
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && command -v python3 >/dev/null; then
  chmod 0755 "$T"
  python3 -c "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])" "$T/root.sock"
  chmod 0600 "$T/root.sock"
  OUT=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$PENCTL" --socket "$T/root.sock" list 2>"$T/stderr")
  RC=$?; ERR=$(cat "$T/stderr")
  assert_eq "$RC" "5" "socket without permission: exit 5"
  assert_contains "$ERR" "permission denied: cannot connect to $T/root.sock" "says permission denied"
  assert_contains "$ERR" "its mode 600 lets no group in" "a socket no group may use is not blamed on a missing group"
else
  echo "# skipped: permission test needs root, setpriv and python3"
fi

# ---- a daemon that does not answer, or hangs up
if command -v python3 >/dev/null; then
  # listen MODE PATH: accept connections and either hold them silently or
  # close them at once.
  listen() {
    python3 - "$1" "$2" <<'PY' &
import os, socket, sys, time
mode, path = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX)
s.bind(path + ".tmp"); s.listen(8); os.rename(path + ".tmp", path)
held = []
while True:
    c, _ = s.accept()
    if mode == "close":
        c.close()
    else:
        held.append(c)
PY
    EMU_PIDS+=("$!")
    local i
    for i in $(seq 100); do [ -S "$2" ] && return 0; sleep 0.05; done
    fail "python listener did not start"
  }
  # A socket bound but never listened on: refused.
  python3 -c "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])" "$T/dead.sock"
  expect 9 --socket "$T/dead.sock" list
  assert_contains "$ERR" "nothing listens" "socket nobody listens on: exit 9"

  listen hold "$T/silent.sock"
  t0=$(date +%s%N)
  expect 6 --socket "$T/silent.sock" --timeout 300 list
  t1=$(date +%s%N)
  assert_contains "$ERR" "no answer from penlinkd" "silent daemon: timeout, exit 6"
  ms=$(( (t1 - t0) / 1000000 ))
  [ "$ms" -lt 5000 ] && ok "silent daemon: gave up after $ms ms (--timeout 300)" || fail "took $ms ms"

  listen close "$T/hangup.sock"
  expect 9 --socket "$T/hangup.sock" info
  assert_contains "$ERR" "closed the connection" "daemon hanging up: exit 9"
  expect 9 --socket "$T/hangup.sock" monitor
  ok "monitor against a daemon that hangs up: exit 9"
else
  echo "# skipped: silent/hang-up daemon tests need python3"
fi
done_testing
