#!/usr/bin/env bash
# Issue 10: a hostile pen's and a hostile client's text at every output.
# A pen whose serial starts a spreadsheet formula and holds BEL, BS, ESC, a
# direction override and a byte that is not UTF-8, and whose stored preset
# names start a formula and hold a newline (a forged table row) and an OSC
# escape; then, for `penctl preset list` (table and --json), the daemon's
# log, `--json` through the daemon and `sessions export --format csv`:
# nothing raw, nothing forged, every JSON document strict UTF-8, every CSV
# text cell guarded and every number left a number.  And a control
# character in a preset name is refused by penctl's policy check, by
# penlinkd, and by the pen itself when the host checks are bypassed.
. "$(dirname "$0")/lib.sh"

serial=$'=HY\xe2\x80\xaePER\xff\a\b\e[31m'
pname=$'@SUM(1)\n2  Forged  9.99 mm\e]0;pwn\a'

# A new flash with the serial and no sessions; then the names planted
# (the flash is SQLite and takes anything); then two sessions generated,
# so each record's preset in force carries the name.
start_emu mk --raw-text --serial "$serial" --flash "$T/pen.flash" --sessions 0
stop_emu "$EMU_PID"
hex=$(printf '%s' "$pname" | od -An -tx1 | tr -d ' \n')
sqlite3 "$T/pen.flash" "UPDATE presets SET name = CAST(X'$hex' AS TEXT);" \
  || fail "cannot plant the hostile preset names"
start_emu pen --flash "$T/pen.flash" --sessions 2 --session-bytes 20000
P=(--port "$EMU_PORT")

json_ok() {
  printf '%s' "$OUT" | python3 -c 'import sys, json; json.loads(sys.stdin.buffer.read().decode("utf-8", "strict"))' \
    || fail "$1: not strict UTF-8 JSON"
  ok "$1: strict UTF-8 JSON"
}
# No C0 byte but newline, no DEL, no C1 (as UTF-8 or as a raw byte).
raw_free() { # WHAT TEXT
  if printf '%s' "$2" | LC_ALL=C grep -q $'[\x01-\x09\x0b-\x1f\x7f]'; then
    fail "$1: a raw control byte"
  fi
  if printf '%s' "$2" | LC_ALL=C grep -q $'\xc2[\x80-\x9f]\|\x9b'; then
    fail "$1: a raw C1 control"
  fi
  ok "$1: no raw control bytes"
}

# ---- penctl preset list, direct
expect 0 "${P[@]}" --json preset list; json_ok "--port --json preset list"
n=$(jqo '.presets | length')
assert_eq "$(jqo '.presets[0].name')" "${pname:0:32}" "--json keeps the name's text (cut to 32 bytes by the pen)"
expect 0 "${P[@]}" preset list
raw_free "--port preset list" "$OUT$ERR"
# A heading, the column names and one line per preset: no forged row.
assert_eq "$(printf '%s\n' "$OUT" | wc -l)" "$((n + 2))" "preset list: one line per preset"
assert_contains "$OUT" '@SUM(1)\x0a2  Forged' "the newline is shown as an escape"
expect 0 "${P[@]}" --json info; json_ok "--port --json info"

# ---- the name rule at the three layers
expect 0 "${P[@]}" --json preset list
before=$(jqo .revision)
for bad in $'Evil\n3  Forged' $'Esc\e[2J' $'Tab\tbed' $'Del\x7f' $'Nel\xc2\x85'; do
  expect 4 "${P[@]}" preset push --id 1 --name "$bad" --depth 0.5 --speed 2
  assert_contains "$ERR" "control character" "penctl refuses $(printf '%q' "$bad")"
  raw_free "the refusal" "$ERR"
done
: "${PUSH_UNCHECKED:?PUSH_UNCHECKED must point at the push_unchecked test program}"
ERR=$("${WRAP[@]}" "$PUSH_UNCHECKED" "$EMU_PORT" 1 $'Evil\n3  Forged' 500 2 2>&1)
RC=$?
[ "$RC" -eq 4 ] || fail "push_unchecked of a newline name exited $RC, expected 4: $ERR"
assert_contains "$ERR" "presets[0].name" "the pen itself refuses the name (host checks bypassed)"
assert_contains "$ERR" "control character" "the pen says why"
expect 0 "${P[@]}" --json preset list
assert_eq "$(jqo .revision)" "$before" "refused names leave the pen's presets alone"
stop_emu "$EMU_PID"

# ---- through penlinkd
start_emu pen2 --flash "$T/pen.flash"
start_daemon --port "$EMU_PORT"
wait_idle 1
for cmd in list info "preset list" "sessions list"; do
  # shellcheck disable=SC2086
  expect 0 "${D[@]}" --json $cmd; json_ok "daemon --json $cmd"
  # shellcheck disable=SC2086
  expect 0 "${D[@]}" $cmd; raw_free "daemon $cmd" "$OUT$ERR"
done
expect 4 "${D[@]}" preset push --id 1 --name $'Evil\n3  Forged' --depth 0.5 --speed 2
assert_contains "$ERR" "control character" "penlinkd refuses the name"
# A client's own hostile text: a serial that names no pen.
expect 3 "${D[@]}" -s $'X\e[2J\nFORGED' info
raw_free "the daemon's not-found message" "$ERR"

# ---- the daemon log: the pen's serial (from the pen and from its records)
# and the client's texts are in it, escaped.
log=$(cat "$T/daemon.log")
raw_free "daemon log" "$log"
assert_contains "$log" 'HY\u202ePER' "the log shows the serial's override escaped"
assert_contains "$log" '\x07\x08\x1b[31m' "the log shows the record's BEL, BS and ESC escaped"

# ---- CSV export: RFC 4180, text cells guarded, numbers left numbers.
expect 0 "${D[@]}" sessions export --format csv
printf '%s' "$OUT" >"$T/export.csv"
python3 - "$T/export.csv" <<'PY' || fail "CSV export"
import csv, io, re, sys
text = open(sys.argv[1], 'rb').read().decode('utf-8', 'strict')
rows = list(csv.reader(io.StringIO(text, newline='')))
head = rows[0]
assert len(rows) == 3, f"{len(rows)} rows"
numeric = {'seq', 'duration_s', 'preset_id', 'depth_mm', 'speed_level',
           'needle_count', 'run_time_s', 'strokes', 'max_depth_mm', 'errors',
           'events', 'samples', 'size'}
for r in rows[1:]:
    assert len(r) == 32, f"{len(r)} columns"
    cell = dict(zip(head, r))
    for k, v in cell.items():
        assert not re.search('[\x00-\x1f\x7f-\x9f]', v), f"{k}: raw control in {v!r}"
        if k in numeric:
            assert re.fullmatch(r'-?[0-9]+(\.[0-9]+)?', v), f"{k}: not a number: {v!r}"
        else:
            assert not v[:1] in ('=', '+', '-', '@', '\t', '\r'), f"{k}: formula {v!r}"
    assert cell['serial'].startswith("'="), cell['serial']
    assert cell['preset_name'].startswith("'@SUM(1)"), cell['preset_name']
print("csv ok")
PY
ok "CSV export: 32 columns, no raw controls, formulas guarded, numbers intact"

done_testing
