#!/usr/bin/env bash
# A noisy line: garbage bytes, corrupted, dropped and delayed frames.  Frames
# are dropped and counted, requests retried, and every record still arrives
# intact.  A pen that boots slowly is waited for.
. "$(dirname "$0")/lib.sh"

start_emu pen --serial PEN-IT-BAD --sessions 2 --session-bytes 400000 --seed 3 \
  --fault-garbage 40 --fault-corrupt 9 --fault-drop 11
P=(--port "$EMU_PORT" --timeout 300)
expect 0 "${P[@]}" --json sessions list
echo "$OUT" >"$T/list.json"
expect 0 "${P[@]}" --dump-frames --json sessions pull --out "$T/arch"
assert_eq "$(jqo '.pulled | length')" "2" "both sessions pulled over a noisy line"
for i in 0 1; do
  uuid=$(jq -r ".sessions[$i].uuid" "$T/list.json"); want=$(jq -r ".sessions[$i].sha256" "$T/list.json")
  f=$(jqo ".pulled[] | select(.uuid == \"$uuid\") | .path")
  assert_eq "$(sha256sum "$f" | cut -d' ' -f1)" "$want" "session $i intact despite faults"
done
drops=$(grep -c '  !  ' <<<"$ERR" || true)
[ "$drops" -gt 0 ] && ok "dropped frames are reported by --dump-frames ($drops)" || fail "no drops seen"
stop_emu "$EMU_PID"

start_emu slow --sessions 0 --fault-boot-delay 1500
expect 0 --port "$EMU_PORT" --json info
assert_eq "$(jqo .serial)" "PEN-0001" "handshake retried until a slow-booting pen answered"
stop_emu "$EMU_PID"

start_emu laggy --sessions 1 --session-bytes 100000 --fault-delay 20
expect 0 --port "$EMU_PORT" --json sessions pull --out "$T/lag"
assert_eq "$(jqo '.pulled | length')" "1" "a slow pen within the timeout works"
done_testing
