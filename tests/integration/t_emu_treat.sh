#!/usr/bin/env bash
# penemu --treat: a treatment seen live.  Through penlinkd, `penctl monitor`
# and `penctl trace` receive the pen's state events as they happen (start,
# depth and speed, pause, cartridge out and in, area, battery low, stop,
# session recorded), spread over the treatment, not all at its end, and the
# trace lines with them; then the daemon archives the recorded session and
# `sessions show` lists exactly the events that were sent, at their offsets.
# Directly (`penctl --port trace`) the same.  And session UUIDs differ
# between pens on one seed, unless --uuid-serial makes one a clone.
. "$(dirname "$0")/lib.sh"

slow=1
if [ ${#WRAP[@]} -gt 0 ]; then slow=10; elif [ "${PL_SANITIZE:-OFF}" = ON ]; then slow=3; fi
DUR=12

# The record's event kind a state event's detail names ("depth: 1.75 mm").
kind_of='def kind_of: (.detail // .message)
  | if startswith("start:") then "start"
    elif startswith("depth:") then "depth_change"
    elif startswith("speed:") then "speed_change"
    elif startswith("area:") then "area_change"
    elif . == "pause" then "pause"
    elif . == "resume" then "resume"
    elif . == "cartridge out" then "cartridge_out"
    elif startswith("cartridge in") then "cartridge_in"
    elif startswith("battery low") then "battery_low"
    elif startswith("error:") then "error"
    elif startswith("stop:") then "stop"
    else "other" end;'

# ---------------------------------------------------------------- through penlinkd
start_emu pen --serial PEN-TREAT --seed 7 --sessions 1 --session-bytes 20000 \
  --treat=$DUR --treat-after 3
P=$EMU_PORT
start_daemon
"${WRAP[@]}" "$PENCTL" "${D[@]}" --json monitor >"$T/monitor.json" 2>"$T/monitor.err" &
MPID=$!
EMU_PIDS+=("$MPID")
sleep 0.3 # subscribed before the pen comes
expect 0 "${D[@]}" attach "$P"
ok "attached; the treatment starts 3 s after the handshake"
"${WRAP[@]}" "$PENCTL" "${D[@]}" -s PEN-TREAT --json trace --level 3 >"$T/trace.json" 2>"$T/trace.err" &
TPID=$!
EMU_PIDS+=("$TPID")

# Until the treatment's session is archived.
uuid=
for i in $(seq $(((DUR + 30) * slow * 10))); do
  uuid=$(jq -r 'select(.kind == "pen_event" and .pen_state == "session-recorded")
                | .message | capture("recorded: (?<u>[0-9a-f-]{36})").u' "$T/monitor.json" 2>/dev/null | head -n1)
  if [ -n "$uuid" ]; then
    run "${D[@]}" --json sessions list
    [ "$RC" -eq 0 ] && [ "$(jqo "[.sessions[] | select(.uuid == \"$uuid\")] | length")" = 1 ] && break
  fi
  sleep 0.1
done
[ -n "$uuid" ] || { cat "$T/daemon.log" "$T/pen.err" >&2; fail "no session-recorded event within $((DUR + 30)) s"; }
ok "the pen announced session $uuid"
sleep 0.3
kill -INT "$MPID" "$TPID"
wait "$MPID" "$TPID"

# Monitor: the treatment's events, from its start to the session recorded.
jq -c "$kind_of"'select(.kind == "pen_event" and .serial == "PEN-TREAT")
       | {t: .utc_ms, up: .pen_uptime_ms, state: .pen_state, value, message, k: kind_of}' \
  "$T/monitor.json" | sed -n '/"message":"start:/,/"state":"session-recorded"/p' >"$T/live.json"
states=$(jq -r .state "$T/live.json" | tr '\n' ' ')
[[ "$states" =~ ^treating\ .*cartridge\ cartridge\ .*battery-low\ .*idle\ session-recorded\ $ ]] \
  && ok "monitor: treating ... cartridge 0, cartridge n ... battery-low ... idle, session-recorded ($states)" \
  || { cat "$T/monitor.json" >&2; fail "monitor: the states are out of order: $states"; }
assert_eq "$(jq -r 'select(.k == "cartridge_out") | .value' "$T/live.json")" "0" "monitor: cartridge out has value 0"
[ "$(jq -r 'select(.k == "cartridge_in") | .value' "$T/live.json")" -ge 0 ] && ok "monitor: cartridge in carries its needle count"
for k in depth_change speed_change pause resume area_change battery_low stop; do
  [ "$(jq -r --arg k $k 'select(.k == $k) | .k' "$T/live.json" | head -n1)" = "$k" ] || fail "monitor: no $k event"
done
ok "monitor: depth, speed, pause, resume, area, battery low and stop were all sent"

# As they happened: spread over the treatment, not all at once at its end.
t0=$(jq -s '.[0].t' "$T/live.json")
tend=$(jq -s '.[-1].t' "$T/live.json")
tcart=$(jq -s '[.[] | select(.k == "cartridge_out")][0].t' "$T/live.json")
tlow=$(jq -s '[.[] | select(.k == "battery_low")][0].t' "$T/live.json")
span=$((tend - t0))
[ "$span" -ge $((DUR * 900)) ] && ok "monitor: start to session recorded took $span ms (treatment ${DUR} s)" \
  || fail "monitor: the events span $span ms, not the ${DUR} s of the treatment"
[ $((tcart - t0)) -ge $((DUR * 150)) ] && [ $((tend - tcart)) -ge $((DUR * 400)) ] \
  && ok "monitor: cartridge out arrived $((tcart - t0)) ms in, $((tend - tcart)) ms before the end" \
  || fail "monitor: cartridge out at +$((tcart - t0)) ms of $span"
[ $((tlow - tcart)) -ge $((DUR * 250)) ] && ok "monitor: battery low came $((tlow - tcart)) ms after the cartridge swap" \
  || fail "monitor: battery low at +$((tlow - t0)) ms, cartridge out at +$((tcart - t0)) ms"
distinct=$(jq -s '[.[].t / 1000 | floor] | unique | length' "$T/live.json")
[ "$distinct" -ge $((DUR / 2)) ] && ok "monitor: events arrived in $distinct different seconds" \
  || fail "monitor: events arrived in only $distinct different seconds"

# Trace through the daemon: the same state events in the same order, and
# trace lines (info for each event, debug telemetry) while it ran.
jq -c "$kind_of"'select(.type == "state") | {t: .utc_ms, state, value, message: .detail, k: kind_of}' \
  "$T/trace.json" | sed -n '/"message":"start:/,/"state":"session-recorded"/p' >"$T/tstates.json"
assert_eq "$(jq -c '[.state, .value, .message]' "$T/tstates.json")" \
  "$(jq -c '[.state, .value, .message]' "$T/live.json")" "trace: the same state events as monitor, in order"
jq -c 'select(.type == "trace" and (.text | startswith("treatment ")))' "$T/trace.json" >"$T/tlines.json"
info=$(jq -s '[.[] | select(.level == 2)] | length' "$T/tlines.json")
debug=$(jq -s '[.[] | select(.level == 3 and (.text | test("depth [0-9]+ um, motor [0-9]+ mA, battery [0-9]+ mV")))] | length' "$T/tlines.json")
assert_eq "$info" "$(jq -s length "$T/live.json" | awk '{print $1 - 1}')" "trace: an info line for each event"
[ "$debug" -ge $((DUR - 2)) ] && ok "trace: $debug telemetry lines (debug, one a second)" \
  || fail "trace: only $debug telemetry lines"
lspan=$(jq -s '.[-1].utc_ms - .[0].utc_ms' "$T/tlines.json")
[ "$lspan" -ge $((DUR * 900)) ] && ok "trace: the lines span $lspan ms" || fail "trace: the lines span only $lspan ms"

# The archive: the session the daemon downloaded holds exactly those events,
# at the offsets they were sent at (the pen's uptime, relative to the start).
expect 0 "${D[@]}" --json sessions show "PEN-TREAT/$uuid"
echo "$OUT" >"$T/record.json"
assert_eq "$(jq -c '[.events[] | [.kind, .value]]' "$T/record.json")" \
  "$(jq -s -c '[.[] | select(.k != "other") | [.k, .value]]' "$T/live.json")" \
  "sessions show lists the events monitor received, kinds and values, in order"
up0=$(jq -s '.[0].up' "$T/live.json")
worst=$(jq -s --slurpfile rec "$T/record.json" --argjson up0 "$up0" \
  '[.[] | select(.k != "other")] as $l | [range(0; $l | length) | ($l[.].up - $up0) - $rec[0].events[.].offset_ms | if . < 0 then -. else . end] | max' \
  "$T/live.json")
[ "$worst" -le $((300 * slow)) ] && ok "each event was sent within $worst ms of its offset in the record" \
  || fail "an event was sent $worst ms away from its offset in the record"
assert_eq "$(jq -r .serial "$T/record.json")" "PEN-TREAT" "the record names the pen"
[ "$(jq -r '.telemetry.count' "$T/record.json")" -ge $((DUR * 10 - 1)) ] \
  && ok "the record holds the treatment's telemetry ($(jq -r .telemetry.count "$T/record.json") samples)" \
  || fail "telemetry: $(jq -c .telemetry "$T/record.json")"
assert_eq "$(jq -r '.summary.errors' "$T/record.json")" \
  "$(jq -s '[.[] | select(.k == "error")] | length' "$T/live.json")" "the summary counts the errors that were sent"
expect 0 "${D[@]}" sessions show "PEN-TREAT/$uuid"
assert_contains "$OUT" "cartridge out" "the table lists the cartridge swap"
assert_contains "$OUT" "battery low" "the table lists the low battery"
kill "$DAEMON_PID"
wait "$DAEMON_PID"
stop_emu "$EMU_PID" || fail "penemu --treat did not exit cleanly"
ok "penemu --treat exits 0 on SIGTERM"

# ---------------------------------------------------------------- directly
start_emu direct --serial PEN-TREAT-D --sessions 0 --treat=5 --treat-after 1
"${WRAP[@]}" "$PENCTL" --port "$EMU_PORT" --json trace --level 2 >"$T/direct.json" 2>"$T/direct.err" &
TPID=$!
EMU_PIDS+=("$TPID")
for i in $(seq $((15 * slow * 10))); do
  grep -q '"state":"session-recorded"' "$T/direct.json" && break
  sleep 0.1
done
kill -INT "$TPID"
wait "$TPID" || fail "penctl --port trace did not end cleanly on Ctrl-C"
states=$(jq -r 'select(.type == "state") | .state' "$T/direct.json" | tr '\n' ' ')
[[ "$states" =~ ^treating\ .*cartridge\ cartridge\ .*battery-low\ .*idle\ session-recorded\ $ ]] \
  && ok "penctl --port trace: treating ... session-recorded ($states)" \
  || { cat "$T/direct.json" "$T/direct.err" >&2; fail "penctl --port trace: $states"; }
expect 0 --port "$EMU_PORT" --json sessions list
assert_eq "$(jqo '.sessions | length')" "1" "the treatment is the pen's one session"

# ---------------------------------------------------------------- UUIDs
uuids() { expect 0 --port "$1" --json sessions list; jqo '[.sessions[].uuid] | join(" ")'; }
start_emu u1 --serial PEN-U1 --seed 5 --sessions 3 --session-bytes 4000
U1=$(uuids "$EMU_PORT")
start_emu u2 --serial PEN-U2 --seed 5 --sessions 3 --session-bytes 4000
U2=$(uuids "$EMU_PORT")
start_emu u1b --serial PEN-U1 --seed 5 --sessions 3 --session-bytes 4000
U1B=$(uuids "$EMU_PORT")
start_emu clone --serial PEN-U3 --uuid-serial PEN-U1 --seed 5 --sessions 3 --session-bytes 4000
U3=$(uuids "$EMU_PORT")
common=$(comm -12 <(tr ' ' '\n' <<<"$U1" | sort) <(tr ' ' '\n' <<<"$U2" | sort) | wc -l)
assert_eq "$common" "0" "two pens with different serials on one seed share no session UUID"
assert_eq "$U1B" "$U1" "the same serial and seed give the same UUIDs"
assert_eq "$U3" "$U1" "--uuid-serial PEN-U1 gives PEN-U1's UUIDs"
run --port "$EMU_PORT" --json info
assert_eq "$(jqo .serial)" "PEN-U3" "the clone still reports its own serial"
done_testing
