#!/usr/bin/env bash
# Issue 10, per-pen budgets: the size of a record a pen serves.
#
# A 48 MiB record is downloaded and committed with penlinkd's peak memory
# (VmHWM from /proc) well below the record's size: the commit streams the
# stored chunks into the archive's blob and into the SHA-256 digest piece by
# piece, and a record over the decode budget is kept raw, not parsed.  The
# archived bytes hash to the pen's digest.  A record over the record size
# budget is refused (it stays on the pen) with a log line naming the
# budget, and the pen's other sessions are archived.
. "$(dirname "$0")/lib.sh"

BOUND_KB=65536
MIB=$((1024 * 1024))
BIG=$((48 * MIB))
# Well below the record: a commit that held it whole would pass this.
RSS_KB=$((BIG / 1024 / 2))

slow=1 rt=1000
if [ ${#WRAP[@]} -gt 0 ]; then
  slow=10 rt=4000
elif [ "${PL_SANITIZE:-OFF}" = ON ]; then
  slow=3 rt=2000
fi
cat >"$T/conf" <<CONF
[pens]
request_timeout_ms = $rt
CONF

# ---- 1. a 48 MiB record
start_emu big --serial PEN-BUD-BIG --sessions 1 --session-bytes $BIG --seed 81
PB=$EMU_PORT BPID=$EMU_PID
expect 0 --port "$PB" --json sessions list
echo "$OUT" >"$T/big.json"
size=$(jq -r '.sessions[0].size' "$T/big.json")
sha=$(jq -r '.sessions[0].sha256' "$T/big.json")
uuid=$(jq -r '.sessions[0].uuid' "$T/big.json")
[ "$size" -ge $((BIG * 9 / 10)) ] && ok "the pen serves a record of $size bytes" \
  || fail "penemu made a record of $size bytes, expected about $BIG"

start_daemon --config "$T/conf"
expect 0 "${D[@]}" attach "$PB"
wait_idle 1 $((180 * slow))
expect 0 "${D[@]}" --json sessions list
assert_eq "$(jqo "[.sessions[] | select(.uuid == \"$uuid\")] | length")" "1" "the record is archived"
assert_eq "$(jqo ".sessions[] | select(.uuid == \"$uuid\") | .sha256")" "$sha" "with the pen's digest"
assert_eq "$(jqo ".sessions[] | select(.uuid == \"$uuid\") | .size")" "$size" "and its size"
grep -q "PEN-BUD-BIG on $PB: session .* archived, $size bytes, SHA-256 verified" "$T/daemon.log" \
  && ok "the daemon verified it" || fail "no 'archived ... SHA-256 verified' line"
grep -q "decode budget" "$T/daemon.log" \
  && ok "kept raw, not decoded: $(grep -m1 "decode budget" "$T/daemon.log" | sed "s/.*not decoded/not decoded/")" \
  || fail "no log line naming the decode budget"
if command -v sqlite3 >/dev/null; then
  # The bytes in the archive itself, hashed outside penlink.
  sqlite3 "$DB" "SELECT writefile('$T/rec.bin', record) FROM sessions WHERE hex(uuid) = upper('${uuid//-/}')" >/dev/null
  assert_eq "$(sha256sum "$T/rec.bin" | cut -d' ' -f1)" "$sha" "the archived bytes hash to the pen's digest"
else
  echo "# sqlite3 not installed: the archived blob is not re-hashed here"
fi

if [ ${#WRAP[@]} -gt 0 ] || [ "${PL_SANITIZE:-OFF}" = ON ]; then
  echo "# memory bound not checked under a sanitizer or memory checker"
else
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$DAEMON_PID/status")
  echo "# penlinkd peak memory (VmHWM) committing a $size-byte record: $hwm kB"
  [ -n "$hwm" ] && [ "$hwm" -le "$RSS_KB" ] && [ "$hwm" -le "$BOUND_KB" ] \
    && ok "penlinkd peak memory $hwm kB <= $RSS_KB kB (half the record; bound $BOUND_KB kB)" \
    || fail "penlinkd peak memory $hwm kB over $RSS_KB kB"
fi
kill "$DAEMON_PID"
wait "$DAEMON_PID"
drc=$?
[ "$drc" -eq 0 ] && ok "penlinkd stopped cleanly" || fail "penlinkd exited $drc on SIGTERM"
stop_emu "$BPID" || fail "penemu did not exit cleanly"

# ---- 2. a record over the record size budget (64 MiB), beside small ones
rm -f "$DB" "$DB"-* "$T/daemon.log"
start_emu huge --serial PEN-BUD-HUGE --flash "$T/huge.flash" --sessions 1 \
  --session-bytes $((72 * MIB)) --seed 82
stop_emu "$EMU_PID"
# Two small sessions on the same flash after the huge one.
start_emu huge --serial PEN-BUD-HUGE --flash "$T/small.flash" --sessions 2 --seed 83
stop_emu "$EMU_PID"
sqlite3 "$T/huge.flash" "ATTACH '$T/small.flash' AS s;" \
  "INSERT INTO sessions (uuid, seq, size, sha256, start_ms, end_ms, rtc, archived, record)
   SELECT uuid, seq + 1, size, sha256, start_ms, end_ms, rtc, archived, record FROM s.sessions" \
  2>"$T/sql.err" || { cat "$T/sql.err" >&2; fail "could not add sessions to the flash"; }
start_emu huge --flash "$T/huge.flash"
PH=$EMU_PORT HPID=$EMU_PID
expect 0 --port "$PH" --json sessions list
assert_eq "$(jqo '.sessions | length')" "3" "the pen holds a 72 MiB record and two small ones"
start_daemon --config "$T/conf"
expect 0 "${D[@]}" attach "$PH"
for i in $(seq $((300 * slow))); do
  run "${D[@]}" --json list
  [ "$(jqo '[.pens[] | select(.state == "idle" or .state == "failed")] | length')" = 1 ] && break
  sleep 0.1
done
line=$(grep -m1 "record size budget" "$T/daemon.log")
[ -n "$line" ] && ok "refused, naming the budget: ${line#*: }" \
  || { tail -n 30 "$T/daemon.log" >&2; fail "no log line naming the record size budget"; }
expect 0 "${D[@]}" --json sessions list
assert_eq "$(jqo '[.sessions[] | select(.serial == "PEN-BUD-HUGE")] | length')" "2" \
  "the pen's two other sessions are archived"
kill "$DAEMON_PID"
wait "$DAEMON_PID"
expect 0 --port "$PH" --json sessions list
assert_eq "$(jqo '[.sessions[] | select(.archived | not)] | length')" "1" "the huge record stays on the pen"
stop_emu "$HPID" || fail "penemu did not exit cleanly"
done_testing
