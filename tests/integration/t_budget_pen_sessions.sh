#!/usr/bin/env bash
# Issue 10, per-pen budgets: the number of sessions a pen lists.
#
# A hostile pen (penemu --hostile sessions) lists a million sessions after
# its own, none of which it can serve.  penlinkd must
#   - never hold more than its session list budget of them (peak memory,
#     VmHWM from /proc, stays far below what a million entries cost: 92 MB
#     before the budget);
#   - say in its log that the list is over the budget, naming it;
#   - detach the pen once it has failed too many of the sessions it listed,
#     naming that budget too;
#   - archive a well-behaved pen attached at the same time, intact;
# and a pen with more real sessions than the list budget still gets every
# one of them archived, a window at a time.
. "$(dirname "$0")/lib.sh"

# The documented bound on penlinkd's peak memory whatever a pen sends
# (README, Reliability: budgets), in kB.
BOUND_KB=65536
# What this test allows: the daemon with two pens measures about 14 MB.
RSS_KB=32768

slow=1 rt=1000
if [ ${#WRAP[@]} -gt 0 ]; then
  slow=10 rt=4000
elif [ "${PL_SANITIZE:-OFF}" = ON ]; then
  slow=3 rt=2000
fi

# ---- 1. a million sessions, beside a good pen
start_emu good --serial PEN-BUD-GOOD --flash "$T/good.flash" --sessions 3 \
  --session-bytes 300000 --seed 71 --fault-delay 2
PG=$EMU_PORT GPID=$EMU_PID
expect 0 --port "$PG" --json sessions list
echo "$OUT" >"$T/good.json"
start_emu bad --serial PEN-BUD-MANY --hostile sessions
PB=$EMU_PORT BPID=$EMU_PID

cat >"$T/conf" <<CONF
[pens]
request_timeout_ms = $rt
CONF
start_daemon --config "$T/conf"
expect 0 "${D[@]}" attach "$PB"
expect 0 "${D[@]}" attach "$PG"

# Until the good pen's sessions are archived and the hostile pen is gone.
gone=0 good=0
for i in $(seq $((600 * slow))); do
  run "${D[@]}" --json list
  [ "$RC" -eq 0 ] || fail "penctl list failed during the attack (exit $RC)"
  [ "$(jqo "[.pens[] | select(.port == \"$PB\")] | length")" = 0 ] && gone=1
  run "${D[@]}" --json sessions list
  [ "$RC" -eq 0 ] && good=$(jqo '[.sessions[] | select(.serial == "PEN-BUD-GOOD")] | length')
  [ "$gone" = 1 ] && [ "$good" = 3 ] && break
  sleep 0.1
done
[ "$gone" = 1 ] || { tail -n 40 "$T/daemon.log" >&2; fail "the pen listing a million sessions was never detached"; }
ok "the pen listing a million sessions is detached ($i polls)"
assert_eq "$good" "3" "the good pen's 3 sessions are archived meanwhile"
for uuid in $(jq -r '.sessions[].uuid' "$T/good.json"); do
  want=$(jq -r ".sessions[] | select(.uuid == \"$uuid\") | .sha256" "$T/good.json")
  assert_eq "$(jqo ".sessions[] | select(.uuid == \"$uuid\") | .sha256")" "$want" \
    "good session $uuid intact"
done

line=$(grep -m1 "PEN-BUD-MANY on $PB lists more than" "$T/daemon.log")
[ -n "$line" ] || { tail -n 40 "$T/daemon.log" >&2; fail "no log line about the list being over its budget"; }
grep -q "session list budget" <<<"$line" && ok "the log names the budget: pen${line#*pen}" \
  || fail "the list line does not name the budget: $line"
line=$(grep -m1 "PEN-BUD-MANY on $PB detached: " "$T/daemon.log")
grep -q "failed-session budget" <<<"$line" && ok "detached, naming the budget: ${line#*detached: }" \
  || { tail -n 40 "$T/daemon.log" >&2; fail "the detach does not name the failed-session budget: $line"; }
nfail=$(grep -c "PEN-BUD-MANY.*\(download of session\|could not\)" "$T/daemon.log")
[ "$nfail" -le 100 ] && ok "$nfail log lines about its failing sessions (bounded)" \
  || fail "$nfail log lines about the hostile pen's sessions: the log is flooded"

if [ ${#WRAP[@]} -gt 0 ] || [ "${PL_SANITIZE:-OFF}" = ON ]; then
  echo "# memory bound not checked under a sanitizer or memory checker"
else
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$DAEMON_PID/status")
  echo "# penlinkd peak memory (VmHWM) with a pen listing a million sessions: $hwm kB"
  [ -n "$hwm" ] && [ "$hwm" -le "$RSS_KB" ] && [ "$hwm" -le "$BOUND_KB" ] \
    && ok "penlinkd peak memory $hwm kB <= $RSS_KB kB (documented bound $BOUND_KB kB)" \
    || fail "penlinkd peak memory $hwm kB over $RSS_KB kB"
fi
kill "$DAEMON_PID"
wait "$DAEMON_PID"
drc=$?
[ "$drc" -eq 0 ] && ok "penlinkd stopped cleanly" || fail "penlinkd exited $drc on SIGTERM"
stop_emu "$GPID" || fail "good penemu did not exit cleanly"
stop_emu "$BPID" || fail "hostile penemu did not exit cleanly"

# ---- 2. more real sessions than the list budget: all archived, in windows
rm -f "$DB" "$DB"-* "$T/daemon.log"
N=600
start_emu many --serial PEN-BUD-600 --sessions $N --session-bytes 1024 --seed 72
PM=$EMU_PORT MPID=$EMU_PID
start_daemon --config "$T/conf"
expect 0 "${D[@]}" attach "$PM"
wait_idle 1 $((240 * slow))
expect 0 "${D[@]}" --json sessions list
assert_eq "$(jqo '[.sessions[] | select(.serial == "PEN-BUD-600")] | length')" "$N" \
  "all $N sessions archived"
grep -q "PEN-BUD-600 on $PM lists more than .*session list budget" "$T/daemon.log" \
  && ok "taken in windows: $(grep -m1 "PEN-BUD-600 on $PM lists more than" "$T/daemon.log" | sed 's/.*: pen/pen/')" \
  || fail "no log line about taking the sessions a window at a time"
grep -q "PEN-BUD-600 on $PM: all $N sessions archived" "$T/daemon.log" \
  && ok "the round ends with all $N archived" || { tail -n 20 "$T/daemon.log" >&2; fail "no 'all $N sessions archived' line"; }
kill "$DAEMON_PID"
wait "$DAEMON_PID"
expect 0 --port "$PM" --json sessions list
assert_eq "$(jqo '[.sessions[] | select(.archived)] | length')" "$N" "the pen was told of all $N"
stop_emu "$MPID" || fail "penemu did not exit cleanly"
done_testing
