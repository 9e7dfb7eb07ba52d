#!/usr/bin/env bash
# A client that stops reading is dropped at the stall limit, measured from
# when it stopped: not up to twice the limit later (a timer that re-armed a
# full period whenever the client had taken anything during the last one
# dropped it after ~60 s for a documented 30 s).
#
# The limit is shortened for speed with PENLINKD_CLIENT_STALL_MS (the
# daemon's test knob, ctl_int.h); the client is a small script that asks
# for a session's record (a stream) and then never reads: the daemon fills
# the socket at once, and from then on the client takes nothing.
. "$(dirname "$0")/lib.sh"

LIMIT_MS=3000
# How late the drop may come after the limit: the client stops reading
# within a fraction of a second of its start, timers are exact to a few ms,
# and the log is polled every 50 ms.  Twice the limit is far outside it.
late_ms=1000
# How early it may seem: penlinkd counts from the moment its socket last
# took bytes, which can come before this script notices the client's "sent"
# (polled every 20 ms, then a fork of date); a drop seen 2995 ms after that
# notice was on time.  50 ms is far below any timer armed wrongly.
early_ms=50
[ ${#WRAP[@]} -gt 0 ] && late_ms=4000
[ "${PL_SANITIZE:-OFF}" = ON ] && late_ms=2000

start_emu pen --serial PEN-ST-1 --sessions 1 --session-bytes 3000000 --seed 41
export PENLINKD_CLIENT_STALL_MS=$LIMIT_MS
start_daemon --port "$EMU_PORT"
unset PENLINKD_CLIENT_STALL_MS
wait_idle 1 120
grep -q "clients that take nothing for $LIMIT_MS ms are dropped" "$T/daemon.log" \
  && ok "penlinkd took the shortened stall limit ($LIMIT_MS ms)" || { cat "$T/daemon.log" >&2; fail "stall limit not taken"; }
expect 0 "${D[@]}" --json sessions list
key="$(jqo '.sessions[0].serial')/$(jqo '.sessions[0].uuid')"

size=$(jqo '.sessions[0].size')
[ "$size" -gt $((2 << 20)) ] && ok "the record is $size bytes: far more than the socket and the daemon's queue hold" \
  || fail "the record is only $size bytes: too small to stall the stream"

# The stalled one: ShowSession framed as penctl would (COBS, version 1,
# CRC-32), sent, then nothing read.
cat >"$T/stall.py" <<'PY'
import socket, sys, time, zlib
path, serial, uuid = sys.argv[1:4]
def varint(n):
    out = b''
    while n >= 0x80:
        out += bytes([n & 0x7f | 0x80]); n >>= 7
    return out + bytes([n])
def ld(num, b): return varint(num << 3 | 2) + varint(len(b)) + b
def cobs(data):
    out, block = b'', b''
    for c in data:
        if c == 0:
            out += bytes([len(block) + 1]) + block; block = b''
        else:
            block += bytes([c])
            if len(block) == 254:
                out += b'\xff' + block; block = b''
    return out + bytes([len(block) + 1]) + block
req = varint(1 << 3) + varint(7) + ld(17, ld(1, uuid.encode()) + ld(2, serial.encode()))
raw = bytes([1, 0]) + req
raw += zlib.crc32(raw).to_bytes(4, 'little')
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
s.sendall(cobs(raw) + b'\x00')
print("sent", flush=True)
while True:
    time.sleep(3600)
PY
python3 "$T/stall.py" "$SOCK" "${key%%/*}" "${key#*/}" >"$T/stall.out" 2>"$T/stall.err" &
EMU_PIDS+=("$!")
for i in $(seq 100); do [ -s "$T/stall.out" ] && break; sleep 0.02; done
t0=$(date +%s%N)
[ -s "$T/stall.out" ] || { cat "$T/stall.err" >&2; fail "the stalling client did not start"; }
n0=0
dropped=0
for i in $(seq $(((LIMIT_MS * 2 + late_ms + 5000) / 50))); do
  if [ "$(grep -c "not reading" "$T/daemon.log")" -gt "$n0" ]; then dropped=1; break; fi
  sleep 0.05
done
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
[ "$dropped" = 1 ] || { cat "$T/daemon.log" >&2; fail "the client that stopped reading was not dropped within $ms ms"; }
echo "# the client that stopped reading was dropped after $ms ms (limit $LIMIT_MS ms)"
line=$(grep "not reading" "$T/daemon.log" | tail -n1)
assert_contains "$line" "took nothing for $LIMIT_MS ms" "the log says why: ${line#*dropped: }"
[ "$ms" -ge $((LIMIT_MS - early_ms)) ] && ok "not dropped before the limit ($ms ms >= $LIMIT_MS ms)" \
  || fail "dropped after $ms ms, before the $LIMIT_MS ms limit"
[ "$ms" -le $((LIMIT_MS + late_ms)) ] && ok "dropped at the limit ($ms ms <= $LIMIT_MS + $late_ms ms), not at twice it" \
  || fail "dropped after $ms ms: the limit is $LIMIT_MS ms (twice it: $((2 * LIMIT_MS)) ms)"

# The daemon goes on serving.
expect 0 "${D[@]}" --json list
assert_eq "$(jqo '.pens | length')" "1" "penlinkd still answers, the pen still attached"
done_testing
