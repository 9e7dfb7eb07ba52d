#!/usr/bin/env bash
# Session download: every record arrives intact (SHA-256 of the stored file
# equals the pen's), exactly once; --keep leaves them on the pen; archiving is
# persistent; records decode.
. "$(dirname "$0")/lib.sh"

start_emu pen --serial PEN-IT-SES --flash "$T/pen.flash" --sessions 3 --session-bytes 300000 --seed 11
P=(--port "$EMU_PORT")

expect 0 "${P[@]}" --json sessions list
assert_eq "$(jqo '.sessions | length')" "3" "three sessions listed"
assert_eq "$(jqo '[.sessions[].archived] | any')" "false" "none archived yet"
echo "$OUT" >"$T/list.json"

expect 0 "${P[@]}" --json sessions pull --out "$T/arch" --keep
assert_eq "$(jqo '.pulled | length')" "3" "three pulled"
assert_eq "$(jqo '.archived | length')" "0" "--keep archives nothing"
for i in 0 1 2; do
  uuid=$(jq -r ".sessions[$i].uuid" "$T/list.json")
  want=$(jq -r ".sessions[$i].sha256" "$T/list.json")
  size=$(jq -r ".sessions[$i].size" "$T/list.json")
  f=$(jqo ".pulled[] | select(.uuid == \"$uuid\") | .path")
  got=$(sha256sum "$f" | cut -d' ' -f1)
  assert_eq "$got" "$want" "session $i: file digest equals the pen's"
  assert_eq "$(stat -c %s "$f")" "$size" "session $i: size"
  case "$f" in *PEN-IT-SES-00000*-"$uuid".plrec) ok "session $i: file named serial-seq-uuid" ;; *) fail "name $f" ;; esac
done
[ -z "$(ls -A "$T/arch" | grep '\.part$')" ] && ok "no partial files left"

expect 0 "${P[@]}" --json sessions pull --out "$T/arch" --keep
assert_eq "$(jqo '.pulled | length')" "0" "second --keep pull downloads nothing"
assert_eq "$(jqo '.skipped | length')" "3" "second --keep pull recognises the stored files"

# A stored file that was damaged is downloaded again, not trusted.
f0=$(ls "$T/arch"/*.plrec | head -n1)
printf 'X' | dd of="$f0" bs=1 seek=100 conv=notrunc status=none
expect 0 "${P[@]}" --json sessions pull --out "$T/arch" --keep
assert_eq "$(jqo '.pulled | length')" "1" "a damaged stored file is downloaded again"

expect 0 "${P[@]}" --json sessions pull --out "$T/arch"
assert_eq "$(jqo '.archived | length')" "3" "pull without --keep archives all three"
assert_eq "$(jqo '.pulled | length')" "0" "and downloads nothing it already has"

expect 0 "${P[@]}" --json sessions list
assert_eq "$(jqo '[.sessions[].archived] | all')" "true" "the pen lists them archived"
expect 0 "${P[@]}" --json sessions pull --out "$T/arch2"
assert_eq "$(jqo '(.pulled | length) + (.skipped | length)')" "0" "a later pull finds nothing new"

stop_emu "$EMU_PID"
start_emu pen2 --flash "$T/pen.flash"
expect 0 --port "$EMU_PORT" --json sessions list
assert_eq "$(jqo '[.sessions[].archived] | all')" "true" "archive flags survive a pen restart"

# Decoding a pulled record, as JSON and for people.
uuid=$(jq -r '.sessions[0].uuid' "$T/list.json")
seq=$(jq -r '.sessions[0].seq' "$T/list.json")
f=$(ls "$T/arch"/*"$uuid".plrec)
expect 0 --json sessions show "$f"
assert_eq "$(jqo .uuid)" "$uuid" "record uuid"
assert_eq "$(jqo .seq)" "$seq" "record seq"
assert_eq "$(jqo .serial)" "PEN-IT-SES" "record serial"
assert_eq "$(jqo '[.events[].kind] | index("start") != null')" "true" "events include the start"
assert_eq "$(jqo '.events[-1].kind')" "stop" "the last event is the stop"
assert_eq "$(jqo '.telemetry.count > 1000')" "true" "telemetry samples present"
assert_eq "$(jqo '.preset.depth_mm > 0')" "true" "preset in force"
expect 0 --json sessions show "$f" --samples
n=$(jq -r '.telemetry.count' <<<"$OUT"); m=$(jq -r '.telemetry.samples.depth_um | length' <<<"$OUT")
assert_eq "$m" "$n" "--samples gives every sample"
expect 0 sessions show "$f"
assert_contains "$OUT" "$uuid" "report names the session"
assert_contains "$OUT" "PEN-IT-SES" "report names the pen"

head -c 5000 /dev/urandom >"$T/junk.plrec"
expect 8 sessions show "$T/junk.plrec"
assert_contains "$ERR" "record" "garbage file is refused as not a record"
done_testing
