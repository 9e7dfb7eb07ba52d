#!/usr/bin/env bash
# Trace streaming and clock sync.
. "$(dirname "$0")/lib.sh"

start_emu pen --serial PEN-IT-TR --sessions 1 --session-bytes 50000
P=(--port "$EMU_PORT")
expect 0 "${P[@]}" --json clock sync
assert_eq "$(jqo .serial)" "PEN-IT-TR" "clock sync names the pen"
expect 0 "${P[@]}" --json clock sync
off=$(jqo '.offset_ms')
[ "${off#-}" -lt 2000 ] && ok "after a sync the pen is within 2 s of the host ($off ms)" || fail "offset $off"
assert_eq "$(jqo .rtc_was_set)" "true" "second sync sees the clock set"

# trace until SIGINT; each request the pen handles is traced.
timeout --preserve-status -s INT 3 "${WRAP[@]}" "$PENCTL" "${P[@]}" --json trace --level 3 >"$T/trace.out" 2>"$T/trace.err"
rc=$?
assert_eq "$rc" "0" "trace ends cleanly on Ctrl-C"
n=$(grep -c '"type"' "$T/trace.out" || true)
[ "$n" -ge 1 ] && ok "trace printed $n events" || { cat "$T/trace.err" >&2; fail "no trace lines"; }
jq -e . "$T/trace.out" >/dev/null && ok "every trace line is JSON"
done_testing
