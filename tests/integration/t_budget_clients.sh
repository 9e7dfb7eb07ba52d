#!/usr/bin/env bash
# Control-socket clients cannot grow penlinkd's memory past its bound.
#
# Worst cases, each against one penlinkd, its peak memory (VmHWM) read from
# /proc after each:
#   1. 100 connections each holding an unfinished request just under the
#      wire's largest message (1 MiB): the issue measured 109 MB for this.
#   2. 100 connections each holding an unfinished request just under the
#      per-client request budget: together they pass the budget of all
#      clients' partial requests, and the clients that pass it are dropped
#      with a log line naming that budget.
#   3. More connections than the client budget: the extra ones are refused
#      with a log line naming the budget.
#   4. One user (nobody) opening more connections than a user may hold: the
#      extra ones are refused, and root's `penctl list` still answers.
# Throughout, a plain `penctl list` keeps working.
. "$(dirname "$0")/lib.sh"

# The budgets under test (daemon/ctl_int.h; README "Reliability").
REQ_MAX=$((64 << 10))       # CTL_MAX_REQUEST: one request
PARTIAL_ALL_MIB=4           # CTL_PARTIAL_ALL_MAX: all clients' partial requests
MAX_CLIENTS=128             # CTL_MAX_CLIENTS
MAX_CLIENTS_USER=32         # CTL_MAX_CLIENTS_PER_USER
# Peak resident memory allowed, in kB.  The documented bound for penlinkd is
# 64 MB whatever pens and clients send; clients alone may cost at most the
# partial-request budget plus the output budget, so 32 MB leaves room while
# a daemon that buffered what it should refuse passes it at once (100 x
# 1 MiB reached 109 MB before the budgets).
CLIENT_RSS_KB=32768

# hold.py SOCK N BYTES: opens N connections, sends BYTES of an unfinished
# frame on each (0xff: COBS blocks of 254 data bytes, never a delimiter),
# prints "open K dropped D refused R" once the daemon had time to react,
# then keeps the connections until killed.
cat >"$T/hold.py" <<'PY'
import socket, sys, time
path, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks, refused, dropped = [], 0, 0
chunk = b'\xff' * 65536
for i in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError:
        refused += 1
        s.close()
        continue
    s.settimeout(10)
    left = size
    try:
        while left > 0:
            k = min(left, len(chunk))
            s.sendall(chunk[:k])
            left -= k
    except OSError:
        dropped += 1
        s.close()
        continue
    socks.append(s)
time.sleep(1.0)
still = []
for s in socks:
    s.setblocking(False)
    try:
        gone = s.recv(65536, socket.MSG_PEEK) == b''
    except BlockingIOError:
        gone = False
    except OSError:
        gone = True
    if gone:
        # Accepted then closed: the daemon refused or dropped it.
        refused += 1 if size == 0 else 0
        dropped += 0 if size == 0 else 1
        s.close()
    else:
        still.append(s)
print("open %d dropped %d refused %d" % (len(still), dropped, refused), flush=True)
while True:
    time.sleep(3600)
PY

# The system's python3: a user switched to with setpriv may not reach a
# per-user installation.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)

slow=1
[ ${#WRAP[@]} -gt 0 ] && slow=10
[ "${PL_SANITIZE:-OFF}" = ON ] && slow=3

chmod 0755 "$T"
cat >"$T/penlinkd.conf" <<CONF
[daemon]
socket_mode = 0666
CONF
start_daemon --config "$T/penlinkd.conf"
expect 0 "${D[@]}" --json list
base_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$DAEMON_PID/status")
echo "# penlinkd at start: VmHWM $base_kb kB"

# hold_clients NAME N BYTES [as-user prefix...]: runs hold.py in the
# background; sets HOLD_PID and HOLD (its report line).
hold_clients() {
  local name=$1 n=$2 bytes=$3; shift 3
  "$@" "$PY" "$T/hold.py" "$SOCK" "$n" "$bytes" >"$T/$name.out" 2>"$T/$name.err" &
  HOLD_PID=$!
  EMU_PIDS+=("$HOLD_PID")
  local i
  for i in $(seq $((600 * slow))); do
    [ -s "$T/$name.out" ] && break
    kill -0 "$HOLD_PID" 2>/dev/null || break
    sleep 0.1
  done
  HOLD=$(head -n1 "$T/$name.out")
  [ -n "$HOLD" ] || { cat "$T/$name.err" >&2; fail "$name: the client helper reported nothing"; }
  echo "# $name: $HOLD"
}
release() { kill "$HOLD_PID" 2>/dev/null; wait "$HOLD_PID" 2>/dev/null; }

peak_ok() {
  local what=$1 kb
  kb=$(awk '/^VmHWM/ {print $2}' "/proc/$DAEMON_PID/status")
  echo "# $what: penlinkd VmHWM $kb kB ($((kb / 1024)) MB; bound $((CLIENT_RSS_KB / 1024)) MB)"
  if [ ${#WRAP[@]} -gt 0 ] || [ "${PL_SANITIZE:-OFF}" = ON ]; then
    ok "$what: peak memory not checked under sanitizers or valgrind ($kb kB)"
  elif [ "$kb" -le "$CLIENT_RSS_KB" ]; then
    ok "$what: penlinkd's peak memory $kb kB stays under $CLIENT_RSS_KB kB"
  else
    fail "$what: penlinkd's peak memory $kb kB is over $CLIENT_RSS_KB kB"
  fi
}

list_works() {
  local t0 t1
  t0=$(date +%s%N)
  run "${D[@]}" --json list
  t1=$(date +%s%N)
  [ "$RC" -eq 0 ] || { cat "$T/daemon.log" >&2; fail "$1: penctl list failed (exit $RC): $ERR"; }
  ok "$1: penctl list answers ($(((t1 - t0) / 1000000)) ms)"
}

# ---- 1. the issue's attack: 100 x (1 MiB - 4 KiB)
hold_clients big 100 $(((1 << 20) - 4096))
list_works "100 clients sending 1 MiB requests"
peak_ok "100 clients sending 1 MiB requests"
release

# ---- 2. 100 x (just under the per-client budget): past the global budget
n0=$(grep -c "budget" "$T/daemon.log")
hold_clients partial 100 $((REQ_MAX - 1024))
list_works "100 partial requests held"
read -r _ open _ dropped _ _ <<<"$HOLD"
[ "$dropped" -ge 1 ] && ok "clients past the budget of all partial requests were dropped ($dropped)" \
  || { tail -n 20 "$T/daemon.log" >&2; fail "no client dropped: $HOLD"; }
max_open=$(((PARTIAL_ALL_MIB << 20) / (REQ_MAX - 1024)))
[ "$open" -le "$max_open" ] && ok "at most $max_open partial requests held ($open)" \
  || fail "$open partial requests held, more than the budget allows ($max_open)"
line=$(grep "partial requests of all clients above the $PARTIAL_ALL_MIB MiB budget" "$T/daemon.log" | head -n1)
[ -n "$line" ] && ok "the log names the budget: ${line#*penlinkd*: }" \
  || { tail -n 20 "$T/daemon.log" >&2; fail "no log line names the partial-request budget"; }
grep -Eq "client uid 0 pid [0-9]+ .*dropped" <<<"$line" && ok "and the client it dropped" || fail "the log line names no client: $line"
peak_ok "100 partial requests"
release

# ---- 3. more connections than the client budget
hold_clients many $((MAX_CLIENTS + 40)) 0
read -r _ open _ _ _ refused <<<"$HOLD"
[ "$open" -le "$MAX_CLIENTS" ] && ok "at most $MAX_CLIENTS clients served at once ($open)" || fail "$open clients connected: $HOLD"
[ "$refused" -ge 40 ] && ok "the clients past the budget were refused ($refused)" || fail "only $refused refused: $HOLD"
grep -q "above the budget of $MAX_CLIENTS clients" "$T/daemon.log" && ok "the log names the client budget" \
  || { tail -n 20 "$T/daemon.log" >&2; fail "no log line names the client budget"; }
release
list_works "after the crowd left"

# ---- 4. one user may not take every connection
if setpriv --reuid=65534 --regid=65534 --clear-groups "$PY" -c '' 2>/dev/null; then
  hold_clients nobody $((MAX_CLIENTS_USER + 20)) 0 setpriv --reuid=65534 --regid=65534 --clear-groups
  read -r _ open _ _ _ refused <<<"$HOLD"
  [ "$open" -le "$MAX_CLIENTS_USER" ] && ok "one user holds at most $MAX_CLIENTS_USER connections ($open)" || fail "nobody holds $open: $HOLD"
  grep -q "uid 65534 .*above the budget of $MAX_CLIENTS_USER clients per user" "$T/daemon.log" \
    && ok "the log names the per-user budget" || { tail -n 20 "$T/daemon.log" >&2; fail "no log line names the per-user budget"; }
  list_works "while nobody holds its connections"
  release
else
  echo "# python3 cannot run as nobody here; per-user budget not checked"
fi

peak_ok "all client attacks"
kill "$DAEMON_PID"; wait "$DAEMON_PID"
assert_eq "$?" "0" "penlinkd exits cleanly after the attacks"
done_testing
