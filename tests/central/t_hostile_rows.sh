#!/usr/bin/env bash
# A database row is input like any other: what `penctl --central` reads
# from a central archive someone altered by hand (as its owner, constraints
# dropped or triggers off) must come out as clear text or a clear error,
# never a crash, never raw control characters on a terminal or in a file,
# never a record whose bytes do not match its digest.
#
# Rows written here: a session whose site, serial, decode error, summary
# and event names carry escape sequences, with extreme numbers and an
# 'infinity' start time; an annotation and an audit entry with the same; a
# session whose record no longer matches its digest (constraint dropped).
. "$(dirname "$0")/lib.sh"

pg_init
central_init
start_emu a1 --serial PEN-HR-1 --flash "$T/a1.flash" --sessions 2 --session-bytes 30000 --seed 61
start_site a --port "$EMU_PORT"
site_idle a 1
site_synced a
URL="host=$PGSOCK dbname=$PGDB user=reader"
C=(--central "$URL")
expect 0 "${C[@]}" --json sessions list
assert_eq "$(jqo '.sessions | length')" "2" "two honest sessions replicated"

U_EVIL=11111111-2222-4333-8444-555555555555
U_BENT=66666666-7777-4888-9999-aaaaaaaaaaaa
# The owner writes what no site would send.  The digest constraint goes for
# the second row only: its record is one byte off its stored sha256.
psql_su -c "
INSERT INTO penlink.sessions (site, serial, uuid, seq, size, sha256, rtc_time,
  start_ms, end_ms, start_utc, end_utc, archived_at, n_events, n_samples,
  decode_error, summary, record)
SELECT E'evil\x1b[31m-site\x07', E'PEN-\x1b[2JEVIL', '$U_EVIL', -1, size, sha256,
  true, 9223372036854775807, -9223372036854775808, 'infinity', '-infinity',
  'infinity', -5, 2147483647, E'bad\x1b]0;owned\x07\r\nline',
  jsonb_build_object('serial', E'\x1b[31mred', 'notes', repeat('x', 5000)),
  record FROM penlink.sessions ORDER BY id LIMIT 1;
INSERT INTO penlink.events (session_id, idx, offset_ms, kind, kind_name, value)
SELECT id, 0, -1, 9999, E'kind\x1b[1mbold\x08', -2147483648 FROM penlink.sessions
WHERE uuid = '$U_EVIL';
ALTER TABLE penlink.sessions DROP CONSTRAINT sessions_record_digest;
INSERT INTO penlink.sessions (site, serial, uuid, seq, size, sha256, rtc_time,
  start_ms, end_ms, start_utc, end_utc, archived_at, n_events, n_samples,
  decode_error, summary, record)
SELECT site, 'PEN-HR-BENT', '$U_BENT', seq, size, sha256, rtc_time, start_ms,
  end_ms, start_utc, end_utc, archived_at, n_events, n_samples, decode_error,
  summary, overlay(record placing '\\x00'::bytea from 10 for 1)
FROM penlink.sessions WHERE serial = 'PEN-HR-1' ORDER BY id LIMIT 1;
ALTER TABLE penlink.annotations DISABLE TRIGGER USER;
INSERT INTO penlink.annotations (site, local_id, serial, uuid, utc_ms, uid,
  \"user\", client_ref, operator, note)
VALUES (E'evil\x1b[31m-site\x07', 1, E'PEN-\x1b[2JEVIL', '$U_EVIL',
  9223372036854775807, -1, E'root\x1b[8m', E'C-\x1b[5m1', E'op\x07',
  E'note\x1b]52;c;cGFzdGU=\x07 with\r\ncarriage');
ALTER TABLE penlink.audit DISABLE TRIGGER USER;
INSERT INTO penlink.audit (site, local_id, utc_ms, uid, \"user\", pen, action,
  old_value, new_value, result, prev_hash, hash)
VALUES (E'evil\x1b[31m-site\x07', 1, -9223372036854775808, -1, E'u\x1b[8m',
  E'PEN-\x1b[2JEVIL', E'preset.push\x07', E'{\"a\":\x1b}', 'not json',
  E'ok\x1b[0m', NULL, repeat('f', 64));
" || fail "cannot write the hostile rows"

# no_raw WHAT TEXT: no byte below 0x20 but newline (and tab), none 0x7f.
no_raw() {
  if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' <<<"$2"; then
    fail "$1: raw control characters in the output: $(printf '%s' "$2" | LC_ALL=C grep -n $'[\x01-\x08\x0b-\x1f\x7f]' | head -n 3 | od -c | head -n 5)"
  fi
  ok "$1: no raw control characters"
}

EVIL="PEN-"$'\x1b'"[2JEVIL/$U_EVIL"

# ---- a value the model cannot hold is an error naming the row, not a
# number wrapped into range
run "${C[@]}" sessions list
no_raw "list of a row with sequence number -1" "$OUT$ERR"
[ "$RC" -ne 0 ] || fail "a sequence number of -1 was listed"
assert_contains "$ERR" 'session PEN-\x1b[2JEVIL/'"$U_EVIL"': sequence number -1 is outside 0..4294967295' \
  "the error names the row (escaped) and the value"
psql_su -c "ALTER TABLE penlink.sessions DISABLE TRIGGER USER;
  UPDATE penlink.sessions SET seq = 7 WHERE uuid = '$U_EVIL'" || fail "cannot mend the row"

# ---- list: every row, shown safely, for people and as JSON
expect 0 "${C[@]}" sessions list
no_raw "list" "$OUT$ERR"
assert_contains "$OUT" "4 sessions in the archive" "list: the altered rows are listed with the rest"
expect 0 "${C[@]}" --json sessions list
assert_eq "$(jqo '.sessions | length')" "4" "list --json: valid JSON, four sessions"
assert_eq "$(jqo ".sessions[] | select(.uuid == \"$U_EVIL\") | .serial")" "PEN-"$'\x1b'"[2JEVIL" \
  "list --json: the serial as stored, escaped by JSON (not altered)"
no_raw "list --json" "$OUT"

# ---- show
expect 0 "${C[@]}" sessions show "$EVIL"
no_raw "show" "$OUT$ERR"
assert_contains "$OUT" "annotations: 1" "show: the session is shown, with its annotation"
assert_contains "$OUT" 'note\x1b]52;c;' "show: an escape sequence in a note is shown as text"
expect 0 "${C[@]}" --json sessions show "$EVIL"
no_raw "show --json" "$OUT"
assert_eq "$(jqo '.annotations | length')" "1" "show --json: its annotation"
assert_contains "$(jqo '.annotations[0].note')" "carriage" "show --json: the note, as text"

# The damaged record is not shown or reported as if it were sound.
run "${C[@]}" sessions show "PEN-HR-BENT/$U_BENT"
assert_eq "$RC" "8" "show of a record that does not match its digest: exit 8"
assert_contains "$ERR" "does not match its SHA-256" "show: says why"
run "${C[@]}" sessions report "PEN-HR-BENT/$U_BENT" --out "$T/bent.html"
assert_eq "$RC" "8" "report of a record that does not match its digest: exit 8"
assert_contains "$ERR" "does not match its SHA-256" "report: says why"
[ -e "$T/bent.html" ] && fail "a report of the damaged record was written" || ok "no report of the damaged record"

# ---- list --client with the escape in the reference
expect 0 "${C[@]}" --json sessions list --client "C-"$'\x1b'"[5m1"
no_raw "list --client" "$OUT$ERR"

# ---- export: CSV and JSON files, whole
for fmt in csv json; do
  expect 0 "${C[@]}" sessions export --format "$fmt" --out "$T/all.$fmt"
  # CSV lines end in CRLF (RFC 4180): only that CR is allowed.
  no_raw "export $fmt" "$(sed 's/\r$//' "$T/all.$fmt")$ERR"
done
assert_eq "$(jq length "$T/all.json")" "4" "export json: every session, valid JSON"
assert_eq "$(python3 -c 'import csv, sys; print(len(list(csv.reader(open(sys.argv[1], newline="")))) - 1)' "$T/all.csv")" "4" \
  "export csv: one row per session (the note's line break quoted, not a new row)"

# ---- what people print and other systems import: the treatment report,
# the period overview and FHIR
expect 0 "${C[@]}" sessions report "$EVIL" --out "$T/evil.html"
no_raw "report" "$(cat "$T/evil.html")$OUT$ERR"
assert_contains "$(cat "$T/evil.html")" "cGFzdGU=" "report: the row's note is in it, as text"
assert_contains "$ERR" "the record itself names session PEN-HR-1/" "report: warns that the record names another session"
expect 0 "${C[@]}" report --since 2000-01-01 --out "$T/overview.html"
no_raw "overview" "$(cat "$T/overview.html")$OUT$ERR"
assert_contains "$(cat "$T/overview.html")" "1 with a start time outside the years 1970-9999: not placed on a day" \
  "overview: the row starting in year 292278994 is counted, not put on a calendar"
expect 0 "${C[@]}" sessions export --format fhir --out "$T/all.fhir.json"
no_raw "export fhir" "$(cat "$T/all.fhir.json")$ERR"
assert_eq "$(jq -r .resourceType "$T/all.fhir.json" | sort -u | paste -sd,)" "Bundle" "export fhir: valid JSON Bundles"
# FHIR's instants have four-digit years: the year-292278994 start is left
# out, not written as a date no FHIR server takes.
assert_eq "$(jq -s '[.. | strings | select(test("^-?[0-9]{5,}-[0-9]{2}-[0-9]{2}T"))] | length' "$T/all.fhir.json")" "0" \
  "export fhir: no date outside the years 0001-9999"

# ---- pull: the record that no longer matches its digest is refused, the
# others are written under clean file names
run "${C[@]}" sessions pull --out "$T/pulled"
no_raw "pull" "$OUT$ERR"
assert_eq "$RC" "8" "pull: a record that does not match its digest ends the pull in exit 8"
assert_contains "$ERR" "session PEN-HR-BENT/$U_BENT: " "pull: the refusal names the session"
assert_contains "$ERR" "SHA-256" "pull: ... and says the digest does not match"
assert_contains "$ERR" "1 session did not match its SHA-256 and was not written (named above); 3 pulled, 0 already present" \
  "pull: the others were pulled past it, and the last line says so"
ls "$T/pulled" | grep -q BENT && fail "pull wrote the bent record" || ok "pull: nothing written for it"
assert_eq "$(ls "$T/pulled" | wc -l)" "3" "pull: the three sound records written"
case "$(ls "$T/pulled")" in *$'\x1b'*) fail "pull: an escape character in a file name" ;; *) ok "pull: clean file names" ;; esac
run "${C[@]}" --json sessions pull --out "$T/pulled"
assert_eq "$RC" "8" "pull again: still exit 8"
assert_eq "$(jqo '.error.exit_code'),$(jqo '.damaged | length'),$(jqo '.damaged[0].uuid'),$(jqo '.skipped | length')" \
  "8,1,$U_BENT,3" "pull --json: the damaged session listed apart, the others already present"

# ---- audit, and its verification naming the altered site's rows
expect 0 "${C[@]}" audit --limit 100
no_raw "audit" "$OUT$ERR"
expect 0 "${C[@]}" --json audit --limit 100
no_raw "audit --json" "$OUT"
run "${C[@]}" audit verify
no_raw "audit verify" "$OUT$ERR"
assert_eq "$RC" "8" "audit verify: the forged row breaks its site's chain (exit 8)"

# ---- the other way: a row altered by hand in a site's own archive is not
# sent to central wrapped into range, but refused there with the reason
# and kept locally
U_LOCAL=77777777-8888-4999-aaaa-bbbbbbbbbbbb
sqlite3 "$T/a.db" "INSERT INTO sessions (serial, uuid, seq, size, sha256, start_ms, end_ms,
  rtc_time, archived_ms, record) SELECT serial, X'${U_LOCAL//-/}', -1, size, sha256,
  start_ms, end_ms, rtc_time, archived_ms, record FROM sessions LIMIT 1" || fail "cannot write the local row"
for i in $(seq 150); do
  central_status a
  [ "$(jqo .refused)" = 1 ] && break
  sleep 0.1
done
assert_eq "$(jqo .refused),$(jqo .pending)" "1,0" "site: the altered row is refused, nothing left pending"
assert_contains "$(cat "$T/a.log")" "not sent: sequence number -1 is outside 0..4294967295; it stays in the local archive, marked refused" \
  "site: the log says which row and why"
assert_eq "$(psql_su -c "SELECT count(*) FROM penlink.sessions WHERE uuid = '$U_LOCAL'")" "0" "central never received it"
assert_eq "$(sqlite3 "$T/a.db" "SELECT count(*) FROM sessions WHERE seq = -1")" "1" "the site keeps it"

expect 0 "${C[@]}" -s PEN-HR-1 --json sessions list
assert_eq "$(jqo '[.sessions[].sha256] | sort | join(",")')" "$(sqlite3 "$T/a.db" "SELECT lower(hex(sha256)) FROM sessions WHERE seq >= 0 ORDER BY 1" | paste -sd,)" \
  "the honest pen's sessions are central's as before"
done_testing
