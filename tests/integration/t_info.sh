#!/usr/bin/env bash
# penctl info against a virtual pen: every limit the pen advertises arrives
# intact, and -s refuses a pen with another serial.
. "$(dirname "$0")/lib.sh"

start_emu pen --serial PEN-IT-INFO --sessions 0
P=(--port "$EMU_PORT")

expect 0 "${P[@]}" --json info
assert_eq "$(jqo .serial)" "PEN-IT-INFO" "serial from device info"
assert_eq "$(jqo .handshake_serial)" "PEN-IT-INFO" "serial from the handshake"
assert_eq "$(jqo .model)" "PL-Pen 1" "model"
assert_eq "$(jqo .protocol_version)" "1" "protocol version"
assert_eq "$(jqo .limits.depth_min_mm)" "0.25" "depth min"
assert_eq "$(jqo .limits.depth_max_mm)" "2.5" "depth max"
assert_eq "$(jqo .limits.depth_step_mm)" "0.25" "depth step"
assert_eq "$(jqo .limits.slow_lock_depth_mm)" "2" "slow-lock depth"
assert_eq "$(jqo .limits.speed_levels)" "6" "speed levels"
assert_eq "$(jqo '.limits.stroke_rate_hz | map(tostring) | join(",")')" "50,70,90,110,130,150" "stroke rates"
assert_eq "$(jqo .limits.max_presets)" "16" "max presets"
assert_eq "$(jqo '.capabilities | index("trace") != null')" "true" "trace capability"
assert_eq "$(jqo '.link.stats.dropped_crc')" "0" "no dropped frames on a clean line"

expect 0 "${P[@]}" info
assert_contains "$OUT" "PEN-IT-INFO" "human info names the pen"
assert_contains "$OUT" "2.50" "human info shows depths in mm"

expect 3 "${P[@]}" -s PEN-OTHER info
assert_contains "$ERR" "PEN-OTHER" "-s mismatch names the serial asked for"
assert_contains "$ERR" "PEN-IT-INFO" "-s mismatch names the pen found"

expect 0 "${P[@]}" -s PEN-IT-INFO --json ping --count 3
assert_eq "$(jqo '.rtt_us | length')" "3" "three pings"

stop_emu "$EMU_PID" || fail "penemu did not exit cleanly"
ok "penemu exits 0 on SIGTERM"
done_testing
