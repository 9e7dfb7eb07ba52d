#!/usr/bin/env bash
# Text from a pen is cleaned at each of penctl's doors: a serial and a preset
# name holding invalid UTF-8 and terminal escapes give valid JSON in every
# --json document and no raw control byte in any table or message.
. "$(dirname "$0")/lib.sh"

# A serial with invalid UTF-8, a colour escape and a C1 CSI (penemu
# --raw-text reports it byte for byte), and a preset name with an OSC title
# sequence and a bell (the pen's flash is SQLite and takes anything).
start_emu mk --raw-text --serial $'PEN-\xff\e[31m\x9bX' --flash "$T/pen.flash" \
  --sessions 2 --session-bytes 20000
stop_emu "$EMU_PID"
sqlite3 "$T/pen.flash" \
  "UPDATE presets SET name = CAST(X'1b5d303b70776e6564074576696cff' AS TEXT) WHERE id = (SELECT min(id) FROM presets);" \
  || fail "cannot plant the hostile preset name"
start_emu pen --flash "$T/pen.flash"
P=(--port "$EMU_PORT")

# json_ok WHAT: the last stdout is one strictly valid JSON document.
json_ok() {
  printf '%s' "$OUT" | python3 -c 'import sys, json; json.loads(sys.stdin.buffer.read().decode("utf-8", "strict"))' \
    || fail "$1: not valid JSON"
  ok "$1: valid JSON"
}
# no_esc WHAT: neither stdout nor stderr holds a raw ESC, BEL or C1 byte.
no_esc() {
  case "$OUT$ERR" in
    *$'\e'* | *$'\a'* | *$'\x9b'*) fail "$1: a raw control byte reached the terminal" ;;
  esac
  ok "$1: no raw control bytes"
}

for cmd in info "preset list" "sessions list"; do
  # shellcheck disable=SC2086
  expect 0 "${P[@]}" --json $cmd; json_ok "--port --json $cmd"
  # shellcheck disable=SC2086
  expect 0 "${P[@]}" $cmd; no_esc "--port $cmd"
done
assert_contains "$(printf '%s' "$OUT")" 'PEN-' "the serial is still shown"
expect 0 "${P[@]}" --json sessions pull --keep --out "$T/direct"
json_ok "--port --json sessions pull"
name=$(ls "$T/direct" | head -n1)
case "$name" in PEN-_*-*.plrec) ok "pulled file named from the cleaned serial: $name" ;;
  *) fail "unexpected file name '$name'" ;; esac
expect 0 "${P[@]}" sessions show "$T/direct/$name"; no_esc "--port sessions show FILE"
expect 0 "${P[@]}" --json sessions show "$T/direct/$name"; json_ok "--json sessions show FILE"
# A refusal quoting the name is a message for a terminal too.
expect 3 "${P[@]}" -s PEN-OTHER info; no_esc "the -s mismatch message"
stop_emu "$EMU_PID"

start_emu pen2 --flash "$T/pen.flash"
start_daemon --port "$EMU_PORT"
wait_idle 1
for cmd in list info "preset list" "sessions list" audit; do
  # shellcheck disable=SC2086
  expect 0 "${D[@]}" --json $cmd; json_ok "daemon --json $cmd"
  # shellcheck disable=SC2086
  expect 0 "${D[@]}" $cmd; no_esc "daemon $cmd"
done
expect 0 "${D[@]}" --json sessions pull --out "$T/out"
json_ok "daemon --json sessions pull"
assert_eq "$(jqo '.pulled | length')" "2" "both sessions pulled"
uuid=$(jqo '.pulled[0].uuid')
expect 0 "${D[@]}" sessions pull --out "$T/out2"; no_esc "daemon sessions pull"
expect 0 "${D[@]}" sessions show "$uuid"; no_esc "daemon sessions show UUID"
expect 0 "${D[@]}" --json sessions show "$uuid"; json_ok "daemon --json sessions show UUID"
expect 0 "${D[@]}" --json sessions export --format json --dir "$T/exp"
json_ok "daemon --json sessions export --dir"
for f in "$T"/exp/*; do
  case "$(basename "$f")" in *[!A-Za-z0-9._-]*) fail "export file name not clean: $f" ;; esac
done
ok "export file names are clean"

done_testing
