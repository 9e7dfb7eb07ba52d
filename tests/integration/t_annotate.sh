#!/usr/bin/env bash
# Session annotations through penlinkd: a client reference, the operator and
# a note, append-only (a correction is a new annotation), shown by sessions
# show, filtered by sessions list --client, in CSV and JSON exports, in the
# audit trail; hostile text never reaches a terminal, JSON or CSV raw.
. "$(dirname "$0")/lib.sh"

start_emu a --serial PEN-AN-1 --sessions 2 --session-bytes 20000
start_daemon --port "$EMU_PORT"
wait_idle 1
expect 0 "${D[@]}" --json sessions list
s1=$(jqo '.sessions[0].uuid')
s2=$(jqo '.sessions[1].uuid')

expect 0 "${D[@]}" sessions annotate "PEN-AN-1/$s1" --client C-100 --operator "Dr. Ann" --note "forehead, 2 passes"
assert_contains "$OUT" "annotated session PEN-AN-1/$s1" "annotate names the session"
# A bare UUID is enough when one pen recorded it; a correction is a new one.
expect 0 "${D[@]}" --json sessions annotate "$s1" --client C-101 --note "client ref corrected"
assert_eq "$(jqo .annotation.client_ref)" "C-101" "--json gives the new annotation"
assert_eq "$(jqo .annotation.user)" "root" "and who made it"
expect 0 "${D[@]}" sessions annotate "PEN-AN-1/$s2" --client C-200 --operator Bob

# Refusals.
expect 3 "${D[@]}" sessions annotate "PEN-AN-1/00000000-0000-4000-8000-000000000000" --note x
assert_contains "$ERR" "no session" "an unknown session is not found (exit 3)"
long=$(printf 'n%.0s' $(seq 2001))
expect 4 "${D[@]}" sessions annotate "PEN-AN-1/$s1" --note "$long"
assert_contains "$ERR" "2000" "a note over 2000 bytes is refused naming the limit"
expect 4 "${D[@]}" sessions annotate "PEN-AN-1/$s1" --client "$(printf 'c%.0s' $(seq 65))"
assert_contains "$ERR" "64" "a client reference over 64 bytes is refused"
expect 2 "${D[@]}" sessions annotate "PEN-AN-1/$s1"
assert_contains "$ERR" "--note" "nothing to add is a usage error"
expect 2 --port "$EMU_PORT" sessions annotate "PEN-AN-1/$s1" --note x
expect 2 --port "$EMU_PORT" sessions list --client C-100

# Filter by the current client reference.
expect 0 "${D[@]}" --json sessions list --client C-101
assert_eq "$(jqo '[.sessions[].uuid] | join(",")')" "$s1" "--client C-101: the corrected session"
expect 0 "${D[@]}" --json sessions list --client C-100
assert_eq "$(jqo '.sessions | length')" "0" "--client C-100: corrected away"
expect 0 "${D[@]}" sessions list --client C-200
assert_contains "$OUT" "$s2" "--client C-200 lists the other session"
assert_contains "$OUT" "1 session in the archive for client C-200" "and says for which client"

# Shown with the session.
expect 0 "${D[@]}" sessions show "PEN-AN-1/$s1"
assert_contains "$OUT" "annotations: 2" "show lists both annotations"
assert_contains "$OUT" "client:   C-100" "the first client reference"
assert_contains "$OUT" "client:   C-101" "the correction"
assert_contains "$OUT" "operator: Dr. Ann" "the operator"
assert_contains "$OUT" "note:     forehead, 2 passes" "the note"
expect 0 "${D[@]}" --json sessions show "PEN-AN-1/$s1"
assert_eq "$(jqo '[.annotations[].client_ref] | join(",")')" "C-100,C-101" "show --json: annotations oldest first"
assert_eq "$(jqo '.annotations[0].operator')" "Dr. Ann" "show --json: operator"

# In exports.
expect 0 "${D[@]}" sessions export --format csv --out "$T/all.csv"
head -n1 "$T/all.csv" | grep -q ',archived_utc,client_ref,operator,notes' && ok "CSV header ends with the annotation columns" || fail "header: $(head -n1 "$T/all.csv")"
grep "$s1" "$T/all.csv" | grep -qF ',C-101,Dr. Ann,"forehead, 2 passes | client ref corrected"' &&
  ok "CSV row: current client and operator, every note" || fail "row: $(grep "$s1" "$T/all.csv")"
grep "$s2" "$T/all.csv" | grep -qF ',C-200,Bob,' && ok "CSV row of the other session" || fail "row: $(grep "$s2" "$T/all.csv")"
expect 0 "${D[@]}" sessions export --format json
assert_eq "$(jqo "[.[] | select(.uuid == \"$s1\") | .annotations[].note] | join(\"|\")")" "forehead, 2 passes|client ref corrected" \
  "JSON export: an annotations array"
assert_eq "$(jqo "[.[] | select(.uuid == \"$s2\") | .annotations | length][0]")" "1" "JSON export: per session"

# Audited, refusals included.
expect 0 "${D[@]}" --json audit
assert_eq "$(jqo '[.entries[] | select(.action == "sessions.annotate" and .result == "ok")] | length')" "3" "each annotation audited"
assert_eq "$(jqo "[.entries[] | select(.action == \"sessions.annotate\" and .new_value.client_ref == \"C-101\" and .new_value.uuid == \"$s1\")] | length")" "1" \
  "the audit row holds what was added"
assert_eq "$(jqo '[.entries[] | select(.action == "sessions.annotate" and .result != "ok")] | length')" "3" "refused annotations audited"

# Append-only in the database itself.
run_sql() { sqlite3 "$DB" "$1" 2>&1; }
assert_contains "$(run_sql "UPDATE annotations SET note = 'x'")" "append-only" "annotations cannot be updated"
assert_contains "$(run_sql "DELETE FROM annotations")" "append-only" "annotations cannot be deleted"

# Hostile text: escaped in the table, valid JSON, guarded CSV.
esc=$'\e[2J\e]0;pwn\a'
expect 0 "${D[@]}" sessions annotate "PEN-AN-1/$s2" --operator "$esc" \
  --note $'=HYPERLINK("http://x")\r\nrow2\xe2\x80\xae' --client $'C-\xff\xfe'
expect 0 "${D[@]}" sessions show "PEN-AN-1/$s2"
[[ "$OUT" != *$'\e'* && "$OUT" != *$'\a'* && "$OUT" != *$'\r'* ]] && ok "show: no raw control characters" || fail "raw control in show"
assert_contains "$OUT" '\x1b[2J' "show: ESC made visible"
assert_contains "$OUT" '\u202e' "show: direction override made visible"
expect 0 "${D[@]}" --json sessions show "PEN-AN-1/$s2"
[[ "$OUT" != *$'\e'* ]] && ok "show --json: no raw ESC" || fail "raw ESC in JSON"
printf '%s' "$OUT" | iconv -f UTF-8 -t UTF-8 >/dev/null && ok "show --json: valid UTF-8" || fail "invalid UTF-8"
assert_eq "$(jqo '.annotations[1].operator')" "$esc" "JSON keeps the text, escaped"
assert_eq "$(jqo '.annotations[1].client_ref')" "C-��" "invalid bytes become U+FFFD"
expect 0 "${D[@]}" sessions export --format csv
[[ "$OUT" != *$'\e'* ]] && ok "CSV: no raw ESC" || fail "raw ESC in CSV"
assert_contains "$OUT" "'=HYPERLINK(\"\"http://x\"\")\\x0d\\x0arow2" "CSV: formula guarded, CR LF escaped"
expect 0 "${D[@]}" sessions export --format json
printf '%s' "$OUT" | iconv -f UTF-8 -t UTF-8 >/dev/null && ok "JSON export: valid UTF-8" || fail "invalid UTF-8 in export"
expect 0 "${D[@]}" audit
[[ "$OUT" != *$'\e'* && "$OUT" != *$'\a'* ]] && ok "audit table: no raw control characters" || fail "raw control in audit"
expect 0 "${D[@]}" audit verify
assert_contains "$OUT" "chain intact" "the trail is intact after all this"
done_testing
